"""The operation and event catalogue of docs/architecture.md, rendered from the code that defines them.

`python -m aura.catalogue` prints the two tables; `--write` puts them into docs/architecture.md
between its `<!-- catalogue:NAME -->` markers. tests/…/test_catalogue.py fails when the file and the
code differ, so the docs cannot drift from the operations (aura.runtime.ops) and event kinds
(aura.runtime.eventkinds) the daemons really have.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

from .runtime import ops
from .runtime.eventkinds import KINDS
from .runtime.paths import DAEMONS

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
MARK = re.compile(r"(<!-- catalogue:(\w+) -->\n).*?(<!-- /catalogue:\2 -->)", re.S)


def load_all() -> None:
    """Register every daemon's operations (importing each daemon's ops package)."""
    from .daemon import daemon_class

    ops.load(ops.__name__, ops.COMMON)
    for name in DAEMONS:
        package = daemon_class(name).ops_package
        if package:
            importlib.import_module(package)


def events_table() -> str:
    rows = [
        "| event | published by | wakes the brain | notifies | shown by `aura up` |",
        "| --- | --- | --- | --- | --- |",
    ]
    for k in KINDS:
        notify = "yes (also at done_only)" if k.urgent else ("yes" if k.notify else "")
        rows.append(
            f"| `{k.name}` | {k.source} | {'yes' if k.wakes_brain else ''} | {notify} | {'yes' if k.shown else ''} |"
        )
    return "\n".join(rows)


def tables() -> dict[str, str]:
    load_all()
    return {"ops": ops.catalogue(("any", *DAEMONS)), "events": events_table()}


def render(text: str, found: dict[str, str]) -> str:
    """`text` with each marked section replaced by its table."""
    return MARK.sub(lambda m: f"{m.group(1)}{found[m.group(2)]}\n{m.group(3)}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aura.catalogue", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOC.name} in place")
    args = parser.parse_args(argv)
    found = tables()
    if args.write:
        DOC.write_text(render(DOC.read_text(), found))
        return 0
    for name, table in found.items():
        print(f"<!-- catalogue:{name} -->\n{table}\n<!-- /catalogue:{name} -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
