"""Workers in transient systemd scopes: the prefix, its fallbacks, and the real spawn path
through a stand-in `systemd-run` that records its arguments and execs the command."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aura.supervisor.scope import scope_command, scoped
from tests.support.harness import Project, wait_for

FAKE = """#!/bin/sh
echo "$@" >> "{log}"
while [ "$#" -gt 0 ]; do
  case "$1" in --) shift; exec "$@";; true) exit {probe_rc};; esac
  shift
done
"""


def _fake(tmp_path: Path, probe_rc: int = 0) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "systemd-run"
    exe.write_text(FAKE.format(log=tmp_path / "systemd-run.log", probe_rc=probe_rc))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return bindir


def test_scope_prefix_decisions(tmp_path: Path, monkeypatch) -> None:
    assert scope_command("off", {"INVOCATION_ID": "x"}) == []
    assert scope_command("auto", {}) == [], "not under systemd: no scopes"
    monkeypatch.setenv("PATH", str(_fake(tmp_path, probe_rc=1)))
    assert scope_command("on", {}) == [], "a failing probe falls back"
    monkeypatch.setenv("PATH", str(_fake(tmp_path, probe_rc=0)))
    prefix = scope_command("auto", {"INVOCATION_ID": "abc"})
    assert prefix[0].endswith("systemd-run") and prefix[1:] == ["--user", "--scope", "--quiet", "--collect"]
    argv = scoped(prefix, tmp_path, "T1-1", ["python", "shim.py"])
    assert (
        argv[-3:] == ["--", "python", "shim.py"]
        and argv[-4].startswith("--unit=aura-")
        and argv[-4].endswith("-T1-1.scope")
    )


def test_supervisor_starts_shims_through_systemd_run(project: Project, tmp_path: Path) -> None:
    bindir = _fake(tmp_path)
    project.env["PATH"] = f"{bindir}{os.pathsep}{project.env['PATH']}"
    project.env["AURA_WORKER_SCOPE"] = "on"
    project.write_task("# Scoped\n\n- [ ] scoped `echo hi > scoped.txt` creates `scoped.txt`\n")
    project.up()
    wait_for(lambda: (project.root / "scoped.txt").exists(), 20, what="the scoped worker")
    log = (tmp_path / "systemd-run.log").read_text().splitlines()
    assert any("--scope" in line and "--unit=aura-" in line and "shim.py" in line for line in log), log
