"""Aura's tests: unit, integration and real, with their shared support (see tests/README.md)."""
