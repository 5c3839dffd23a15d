"""Unit tests: pure functions, parsers and in-process objects; no daemon, no worker."""
