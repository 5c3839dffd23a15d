"""Integration tests: the real daemons and workers in temporary folders."""
