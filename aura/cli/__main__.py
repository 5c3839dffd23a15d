"""`python -m aura.cli`: the `aura` command."""

from .group import main

main()
