"""Parsers of worker CLIs' machine-readable output streams (one module per CLI)."""

from supervisor.streams.claude import OUTCOMES, ClaudeStream, classify_claude

__all__ = ["OUTCOMES", "ClaudeStream", "classify_claude"]
