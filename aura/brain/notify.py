"""Notifications: a user command and/or a webhook run on the events a person waits for.

Which events are sent is the `notify` flag of each kind in aura.runtime.eventkinds. Levels
(AURA_NOTIFY_LEVEL): `state_changes` (all of them), `done_only` (the `urgent` ones: the run ended or
cannot go on), `silent`.

The command runs through /bin/sh with AURA_EVENT, AURA_MESSAGE, AURA_EVENT_JSON, AURA_TASK_ID
and AURA_PROJECT_ROOT set; the webhook receives the same JSON as a POST. Each runs in a thread
with a timeout: a slow, failing or missing hook is logged (and recorded in
`.aura/state/notifications.jsonl`) and never holds or stops the brain.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from aura.runtime.config import Config
from aura.runtime.eventkinds import NOTIFIED, URGENT, text_of
from aura.runtime.fsutil import append_line

LEVELS: dict[str, frozenset[str]] = {
    "state_changes": NOTIFIED,
    "done_only": URGENT,
    "silent": frozenset(),
}


def message_for(kind: str, data: dict) -> str:
    """One human line per event (what a phone notification shows): the event's own message, else its line."""
    return str(data.get("message") or text_of(kind, data))


class Notifier:
    def __init__(self, cfg: Config, log: Any, project_root: Path, record: Path):
        self.command = cfg.text("AURA_NOTIFY_COMMAND").strip()
        self.webhook = cfg.text("AURA_NOTIFY_WEBHOOK").strip()
        level = cfg.text("AURA_NOTIFY_LEVEL").strip().lower()
        if level not in LEVELS:
            log.warning("notify_level_unknown", level=level, using="state_changes")
            level = "state_changes"
        self.events = LEVELS[level]
        self.timeout = cfg.number("AURA_NOTIFY_TIMEOUT")
        self.log = log
        self.root = project_root
        self.record = record
        self.threads: list[threading.Thread] = []

    @property
    def enabled(self) -> bool:
        return bool(self.command or self.webhook)

    def notify(self, kind: str, data: dict) -> bool:
        """Start the hooks for `kind` if the level wants it; True when something was started."""
        if kind not in self.events or not self.enabled:
            return False
        payload = {
            "event": kind,
            "time": time.time(),
            "project": str(self.root),
            "message": message_for(kind, data),
            "data": data,
        }
        thread = threading.Thread(target=self._deliver, args=(payload,), name=f"notify-{kind}", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return True

    def wait(self, timeout: float = 5.0) -> None:
        """Let hooks in flight finish (at shutdown), each bounded by its own timeout anyway."""
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))

    def _deliver(self, payload: dict) -> None:
        if self.command:
            self._outcome(payload, "command", self._run_command, payload)
        if self.webhook:
            self._outcome(payload, "webhook", self._post, payload)

    def _outcome(self, payload: dict, target: str, fn: Any, arg: dict) -> None:
        try:
            fn(arg)
        except Exception as exc:  # a hook must never take the brain down
            self.log.warning("notify_failed", notify_event=payload["event"], target=target, error=str(exc)[:300])
            self._record(payload, target, False, str(exc)[:300])
        else:
            self.log.info("notified", notify_event=payload["event"], target=target)
            self._record(payload, target, True, None)

    def _run_command(self, payload: dict) -> None:
        data = payload["data"]
        env = dict(
            os.environ,
            AURA_EVENT=payload["event"],
            AURA_MESSAGE=payload["message"],
            AURA_EVENT_JSON=json.dumps(payload, default=str),
            AURA_PROJECT_ROOT=str(self.root),
            AURA_TASK_ID=str(data.get("task_id") or ""),
        )
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", self.command],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"command timed out after {self.timeout:g}s") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-200:]
            raise RuntimeError(f"command exited {proc.returncode}: {tail}")

    def _post(self, payload: dict) -> None:
        req = urllib.request.Request(
            self.webhook,
            data=json.dumps(payload, default=str).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "aura-notify"},
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"webhook answered HTTP {resp.status}")

    def _record(self, payload: dict, target: str, ok: bool, error: str | None) -> None:
        try:
            append_line(
                self.record,
                json.dumps(
                    {
                        "ts": time.time(),
                        "event": payload["event"],
                        "target": target,
                        "ok": ok,
                        "error": error,
                        "message": payload["message"],
                    }
                ),
            )
        except OSError:
            pass  # a full disk: the hook ran (or failed, logged above); only its record is lost
