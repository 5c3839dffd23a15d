"""Helpers of the `aura service` tests: a project folder whose path needs quoting, and its service."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aura.service import ProjectService


def odd_project(tmp_path: Path) -> Path:
    """A project root whose path needs quoting everywhere: blank, %, $, & and <."""
    root = tmp_path / "my proj %i $HOME & <x>"
    (root / ".aura").mkdir(parents=True)
    (root / "task.md").write_text("Build the thing.\n")
    return root


def svc_for(root: Path, **changes: object) -> ProjectService:
    return dataclasses.replace(ProjectService.for_project(root, root / "task.md"), **changes)  # type: ignore[arg-type]
