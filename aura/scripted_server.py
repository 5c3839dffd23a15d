"""The scripted model server's command and import name: `python -m aura.scripted_server` and
`from aura.scripted_server import ScriptedServer` (the code lives in aura.scripted)."""

import sys

from aura.scripted import ScriptedServer, ScriptError, estimate_tokens, load_script
from aura.scripted.cli import main

__all__ = ["ScriptError", "ScriptedServer", "estimate_tokens", "load_script", "main"]

if __name__ == "__main__":
    sys.exit(main())
