"""Tests that need an outside real part: the Claude Code CLI, the package index, systemd, a GPU."""
