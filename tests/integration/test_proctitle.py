"""Daemons carry their own kernel process name (`comm`), so a worker's `pkill python` or
`killall python` (which match that name, not the command line) cannot hit Aura."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aura.runtime import proctitle
from tests.support.harness import REPO
from tests.support.rig import Rig

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's")


def comm(pid: int | str) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


@linux_only
def test_set_process_name_renames_the_process_in_a_subprocess() -> None:
    code = (
        "import sys, threading\n"
        "from aura.runtime.proctitle import set_process_name\n"
        "before = open('/proc/self/comm').read().strip()\n"
        "ok = set_process_name('aura-unit-test')\n"
        "after = open('/proc/self/comm').read().strip()\n"
        "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
        "long_ok = set_process_name('aura-a-name-longer-than-fifteen')\n"
        "long = open('/proc/self/comm').read().strip()\n"
        "bad = set_process_name('bad\\0name'), set_process_name('')\n"
        "print(before, ok, after, long_ok, long, *bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, ok, after, long_ok, long, *bad = out.stdout.split()
    assert before.startswith("python") and (ok, after) == ("True", "aura-unit-test")
    assert long_ok == "True" and long == "aura-a-name-lon"  # the kernel keeps 15 bytes
    assert bad == ["False", "False"]  # refused, never raised


def test_set_process_name_is_a_no_op_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proctitle.sys, "platform", "darwin")
    assert proctitle.set_process_name("aura-test") is False


@linux_only
def test_daemons_are_not_named_python(rig: Rig) -> None:
    rig.start("supervisor", "watchdog")
    pids = {name: rig.p.pidfile(name)["pid"] for name in ("supervisor", "watchdog")}
    assert pids["watchdog"] == rig.procs["watchdog"].pid
    assert comm(pids["watchdog"]) == "aura-watchdog" and comm(pids["supervisor"]) == "aura-supervisor"
    assert not any(comm(pid).startswith("python") for pid in pids.values())
    # what `pkill -x python3` in a worker would pick: the interpreter's own name, as this test process has it
    pgrep = shutil.which("pgrep")
    if pgrep:
        own = comm("self")
        assert own.startswith("python")
        found = subprocess.run([pgrep, "-x", own], capture_output=True, text=True, timeout=30).stdout.split()
        assert not {str(p) for p in pids.values()} & set(found), (own, found)
    # and the daemon still answers under its new name
    assert rig.call("watchdog", "ping")["pong"]
