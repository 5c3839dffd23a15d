"""Aura: run an autonomous agent on one goal for hours or days.

Kept import-free on purpose: the CLI's read-only commands must start fast.
"""

__version__ = "0.2.0"
