"""The `aura` command line: the group in `group`, one module per family of commands, `common` for
what they share. The `aura` script runs `aura.cli:main`; `python -m aura.cli` does the same."""

from .group import cli, main

__all__ = ["cli", "main"]
