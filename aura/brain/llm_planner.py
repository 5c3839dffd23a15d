"""The `llm` planner: a model decides each cycle through tools; the brain checks and records.

One cycle:
1. reconcile with the supervisor (settle finished attempts on evidence) and, once every task is
   done, run the task file's acceptance commands;
2. collect what is new since the last model cycle (status changes the brain made, a task-file
   diff, an explicit `aura wake`, stuck workers, a pending review);
3. skip the model call when nothing is new (AURA_SKIP_HEALTHY_CYCLES, at most
   AURA_MAX_SKIPPED_CYCLES in a row), when the budget is spent, or while safe mode waits for its
   next probe: idle wake-ups are where long-running agents burn most money;
4. otherwise build the context (stable, cached prefix first) and run the tool loop within the
   per-cycle caps on model calls and tool calls, accounting every call's tokens and dollars.

A model call that still fails after the client's retries skips the cycle, never the process;
AURA_SAFE_MODE_AFTER failed cycles in a row enter safe mode (no new spawns, monitoring goes on,
one probe per AURA_LLM_DEAD_THROTTLE seconds), which ends by itself at the first answer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aura.runtime.eventkinds import Kind
from aura.runtime.vocab import BLOCKED, COMPLETED, IN_PROGRESS, PENDING, TASK_DONE, TASK_ENDED

from . import context as ctxmod
from . import costs as costmod
from . import questions
from .evidence import run_acceptance
from .memory import Memory, recommendations
from .model_client import ClientSettings, ModelClient, ModelError, Reply
from .state import ROOT, leaves, not_before
from .tools import Toolbox, definitions
from .worker_usage import WorkerUsage

MAX_RESULT_CHARS = 20000
NEWS_KEEP = 100
RECENT_KEEP = 5


class LlmPlanner:
    name = "llm"
    event_delay = 0.02  # a cycle may call the model: events that come together (a kill and its exit) share one call

    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.cfg = daemon.cfg
        self.log = daemon.log
        self.paths = daemon.paths
        self.memory = Memory(self.paths.memory_dir)
        self.paths.memory_dir.mkdir(parents=True, exist_ok=True)
        self.core: Any = None
        self.client: ModelClient | None = None
        self.marker = ctxmod.cache_marker(self.cfg)
        self.tool_defs = definitions(self.cfg)
        self.toolbox: Toolbox | None = None
        self.cycle_no = 0
        self.told: list[str] = []  # the answers the cycle's first request shows
        self.clock: Callable[[], float] = time.time  # the review interval's clock; tests drive it
        self.usage = WorkerUsage(self.paths.endpoint("watchdog"), daemon.ctx)

    # -- the Planner protocol used by the tools ---------------------------------------------------
    def spawn_refusal(self) -> str | None:
        safe = self.core.state.get("safe_mode")
        if safe:
            return f"safe mode ({safe.get('reason')}): no new workers until it ends"
        if costmod.budget_reached(self.core.state):
            b = self.core.state["budget"]
            return (
                f"budget reached (${b.get('spent_usd', 0):.4f} of ${b.get('limit_usd', 0):.2f}); "
                "raise it with `aura budget USD`"
            )
        if not self.core.supervisor_ok:
            return "the supervisor is not answering"
        if self.core.disk_block:
            return f"the disk is short of space ({self.core.disk_block}); new workers wait until it is back"
        return None

    def worker_usage(self) -> dict[str, dict] | None:
        """The watchdog's figures for the running workers; None when it does not answer."""
        return self.usage.fetch([str(t.get("worker_id")) for t in self.core.running() if t.get("worker_id")])

    def record(self, kind: str, **fields: Any) -> None:
        self.core.decisions.record(kind, cycle=self.cycle_no, by="model", **fields)

    def confirm_goal(self, reason: str, evidence: str) -> tuple[bool, str]:
        """The model says the goal is done: every leaf done, and the task file's acceptance passes."""
        all_leaves = leaves(self.core.state)
        if not all_leaves:
            return False, "there are no tasks yet"
        not_done = [t["id"] for t in all_leaves if t["status"] not in TASK_DONE]
        if not_done:
            return (
                False,
                f"tasks not completed: {', '.join(not_done[:10])} (archive what is not needed, or mark ROOT blocked)",
            )
        proof = self._acceptance()
        if proof is not None and not proof.ok:
            return False, "; ".join(proof.problems)
        checked = proof.summary() if proof is not None else f"all {len(all_leaves)} tasks completed with evidence"
        self.core.state.setdefault("llm", {})["goal_closed"] = True
        self.core.set_status(
            self.core.tasks[ROOT], COMPLETED, reason, f"{evidence} | checked by the brain: {checked}", by="model"
        )
        return True, checked

    def close_goal(self, status: str, reason: str, evidence: str) -> str:
        running = [t["id"] for t in self.core.running()]
        if running:
            return f"not closed: tasks still running ({', '.join(running)}); kill_task them first"
        for task in leaves(self.core.state):
            if task["status"] not in TASK_ENDED:
                self.core.set_status(task, BLOCKED, f"the goal was given up: {reason}", evidence, by="model")
        self.core.state.setdefault("llm", {})["goal_closed"] = True
        self.core.set_status(self.core.tasks[ROOT], status, reason, evidence, by="model")
        return f"goal closed as {status}"

    # -- the cycle ------------------------------------------------------------------------------------
    def cycle(self, core: Any) -> dict:
        self.core = core
        self.cycle_no = core.state.get("total_cycles", 0)
        core.finish_gate = self.goal_closed
        if self.toolbox is None:
            self.toolbox = Toolbox(self)
        llm = self._llm_state()
        core.reconcile()
        self._auto_acceptance()
        self._collect_news()
        why = self._reasons_to_call()
        skip = self._skip_reason(why)
        if skip:
            llm["skipped_in_row"] = llm.get("skipped_in_row", 0) + 1
            llm["skipped_total"] = llm.get("skipped_total", 0) + 1
            self.log.info("model_call_skipped", cycle=self.cycle_no, why=skip)
            return {"skipped": skip, **self._retry_hint()}
        return self._model_cycle(why)

    def goal_closed(self) -> bool:
        return bool(self._llm_state().get("goal_closed"))

    def _llm_state(self) -> dict:
        llm = self.core.state.setdefault("llm", {})
        for key, value in (
            ("model_cycles", 0),
            ("skipped_in_row", 0),
            ("failures_in_row", 0),
            ("news", []),
            ("decisions_offset", 0),
            ("reported_stuck", []),
            ("recent", []),
        ):
            llm.setdefault(key, value)
        return llm

    # -- what is new -----------------------------------------------------------------------------------
    def _collect_news(self) -> None:
        """Decisions the brain made since the last model cycle (settled attempts, resource kills, ...)."""
        llm = self._llm_state()
        path = self.core.decisions.path
        try:
            with open(path, "rb") as fh:
                fh.seek(llm["decisions_offset"])
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        llm["decisions_offset"] += end
        run_finished = bool((self.core.state.get("run") or {}).get("finished"))
        for raw in data[:end].splitlines():
            try:
                d = json.loads(raw)
            except ValueError:
                continue
            if self._is_news(d, run_finished):
                llm["news"].append(d)
        llm["news"] = llm["news"][-NEWS_KEEP:]

    @staticmethod
    def _is_news(d: dict, run_finished: bool) -> bool:
        if d.get("by") == "model":
            return False
        if d.get("kind") == "status":
            if d.get("new") == IN_PROGRESS:
                return False  # a spawn the planner asked for, or a re-sent one
            return not (d.get("task_id") == ROOT and run_finished)
        return d.get("kind") in ("task_added", "acceptance_failed", "note")

    def _reasons_to_call(self) -> list[str]:
        state, llm = self.core.state, self._llm_state()
        why: list[str] = []
        if not ctxmod.has_plan(state):
            why.append("no plan yet")
        if state.get("pending_task_diff") or state.get("planning_needed"):
            why.append("the task file changed")
        if llm["news"]:
            why.append(f"{len(llm['news'])} change(s)")
        if any(r.startswith("wake:") for r in self._wake_reasons()):
            why.append("aura wake")
        if questions.has_news(state):
            why.append("an answer from the user")
        stuck = self._new_stuck()
        if stuck:
            why.append(f"stuck or looping: {', '.join(stuck)}")
        if llm.get("pending_review") and not llm["pending_review"].get("consumed"):
            why.append("a review to read")
        if (state.get("safe_mode") or {}) and not (state.get("safe_mode") or {}).get("kind"):
            why.append("the state was reset")
        if self._stalled() and not llm.get("last_why") == ["stalled"]:
            why.append("stalled")
        if self._all_terminal_unconfirmed() and not llm.get("asked_to_confirm"):
            why.append("every task is terminal: confirm the goal")
        why += [w for w in llm.get("pending_why") or [] if w not in why]  # a failed cycle's reasons still hold
        if not why and llm.get("skipped_in_row", 0) >= self.cfg.integer("AURA_MAX_SKIPPED_CYCLES"):
            why.append("heartbeat after skipped cycles")
        if not why and not self.cfg.flag("AURA_SKIP_HEALTHY_CYCLES"):
            why.append("skipping is off")
        return why

    def _wake_reasons(self) -> list[str]:
        return list(getattr(self.daemon, "cycle_reasons", []) or [])

    def _new_stuck(self) -> list[str]:
        llm = self._llm_state()
        out = []
        for task in self.core.running():
            wid = task.get("worker_id")
            p = (self.core.workers.get(wid or "") or {}).get("progress") or {}
            if (p.get("stuck") or p.get("loop")) and wid not in llm["reported_stuck"]:
                out.append(wid)
        return out

    def _stalled(self) -> bool:
        """Nothing runs, work is ready, and a worker could start: the model must act."""
        if self.core.running() or self.spawn_refusal() or self.goal_closed():
            return False
        now = time.time()
        return any(t["status"] == PENDING and not_before(t) <= now for t in ctxmod.open_leaves(self.core.state))

    def _all_terminal_unconfirmed(self) -> bool:
        all_leaves = leaves(self.core.state)
        return bool(all_leaves) and all(t["status"] in TASK_ENDED for t in all_leaves) and not self.goal_closed()

    def _skip_reason(self, why: list[str]) -> str | None:
        state, llm = self.core.state, self._llm_state()
        if costmod.budget_reached(state):
            return "budget reached"
        if (state.get("run") or {}).get("finished") and not (state.get("pending_task_diff") or "aura wake" in why):
            return "the run is finished"
        if not why:
            return "nothing new"
        safe = state.get("safe_mode") or {}
        if safe.get("kind") == "api":
            wait = self.cfg.number("AURA_LLM_DEAD_THROTTLE") - (time.time() - llm.get("last_attempt_at", 0))
            if wait > 0:
                return f"safe mode: next probe in {wait:.0f}s"
        return None

    def _retry_hint(self) -> dict:
        safe = self.core.state.get("safe_mode") or {}
        if safe.get("kind") != "api":
            return {}
        wait = self.cfg.number("AURA_LLM_DEAD_THROTTLE") - (time.time() - self._llm_state().get("last_attempt_at", 0))
        return {"retry_in": max(0.2, wait)}

    # -- the brain checks the goal itself --------------------------------------------------------------
    def _acceptance(self) -> Any:
        tf = self.core.task_file()
        if tf is None or not tf.acceptance:
            return None
        return run_acceptance(
            tf.acceptance, self.core.work_root(), self.cfg.number("AURA_ACCEPTANCE_TIMEOUT"), wait=self.daemon.pump
        )

    def _auto_acceptance(self) -> None:
        """Every task done: run the task file's acceptance once per new state of the tree."""
        all_leaves = leaves(self.core.state)
        if not all_leaves or self.goal_closed() or any(t["status"] not in TASK_DONE for t in all_leaves):
            return
        tf = self.core.task_file()
        if tf is None or not tf.acceptance:
            return
        llm = self._llm_state()
        mark = [tf.digest, max(float(t.get("updated_at") or 0) for t in all_leaves)]
        if llm.get("acceptance_checked_for") == mark:
            return
        llm["acceptance_checked_for"] = mark
        proof = run_acceptance(
            tf.acceptance, self.core.work_root(), self.cfg.number("AURA_ACCEPTANCE_TIMEOUT"), wait=self.daemon.pump
        )
        if proof.ok:
            llm["goal_closed"] = True
            self.core.decisions.record("goal_verified", cycle=self.cycle_no, by="brain", evidence=proof.summary())
            self.log.info("goal_verified", evidence=proof.summary())
        else:
            self.core.decisions.record(
                "acceptance_failed", cycle=self.cycle_no, by="brain", reason="; ".join(proof.problems)[:1000]
            )

    # -- the model cycle ------------------------------------------------------------------------------
    def _model_cycle(self, why: list[str]) -> dict:
        llm = self._llm_state()
        llm["last_attempt_at"] = time.time()
        safe = self.core.state.get("safe_mode") or {}
        try:
            client = self._client()
            outcome = self._tool_loop(client, why, probe=safe.get("kind") == "api")
        except ModelError as exc:
            llm["pending_why"] = why
            return self._failed(exc)
        self._succeeded(why, outcome)
        return {"model_calls": outcome["rounds"], "tool_calls": outcome["tool_calls"], "ended_by": outcome["ended_by"]}

    def _client(self) -> ModelClient:
        """Built inside the cycle's error handling, so a failing construction counts as a failed
        cycle (and leads to safe mode) rather than escaping it."""
        if self.client is None:
            self.client = ModelClient(
                ClientSettings.from_config(self.cfg), should_stop=lambda: self.daemon.stopping, wait=self.daemon.pump
            )
        return self.client

    def _tool_loop(self, client: ModelClient, why: list[str], probe: bool) -> dict:
        state = self.core.state
        news = list(self._llm_state()["news"])
        system = ctxmod.system_blocks(self.cfg, self.marker)
        messages = [self._first_message(why, news)]
        rounds = tool_calls = 0
        names: list[str] = []
        ended_by = "no reply"
        max_rounds, max_tools = (
            self.cfg.integer("AURA_MAX_API_ROUNDS_PER_CYCLE"),
            self.cfg.integer("AURA_MAX_TOOL_CALLS_PER_CYCLE"),
        )
        while True:
            if rounds >= max_rounds:
                ended_by = f"cap of {max_rounds} model calls (AURA_MAX_API_ROUNDS_PER_CYCLE)"
                break
            if costmod.budget_reached(state) and rounds:
                ended_by = "budget reached"
                break
            reply = client.create(
                system,
                self.tool_defs,
                ctxmod.with_rolling_marker(messages, self.marker),
                attempts=1 if probe and rounds == 0 else None,
            )
            rounds += 1
            self._account(reply, "run_cycle")
            if rounds == 1:
                self._left_safe_mode(reply)
            messages.append({"role": "assistant", "content": reply.content or [{"type": "text", "text": "(empty)"}]})
            if reply.stop_reason == "pause_turn":
                continue
            uses = reply.tool_uses()
            if not uses:
                ended_by = f"{reply.stop_reason}: {reply.text()[:200]}"
                self._remember_text(reply.text() or reply.stop_reason)
                break
            results, stop, tool_calls = self._run_tools(uses, reply, tool_calls, max_tools, names)
            if stop:
                ended_by = stop
                break
            messages.append({"role": "user", "content": results})
        return {"rounds": rounds, "tool_calls": tool_calls, "ended_by": ended_by, "tools": names}

    def _first_message(self, why: list[str], news: list[dict]) -> dict:
        state, llm = self.core.state, self._llm_state()
        tf = self.core.task_file()
        self.told = questions.untold(state)
        snap = ctxmod.snapshot(
            self.core,
            self.cfg,
            cycle=self.cycle_no,
            reasons=self._wake_reasons() + why,
            news=news,
            planning=self._planning_reason(),
            notices=self._notices(),
            recent=llm["recent"],
            session=self.memory.session_text(),
            usage=self.worker_usage(),
        )
        memory = self.memory.for_context(self.cfg.integer("AURA_MEMORY_CONTEXT_CHARS"))
        return ctxmod.first_message(state, tf.text if tf else None, memory, snap, self.marker)

    def _planning_reason(self) -> str | None:
        state = self.core.state
        if not ctxmod.has_plan(state):
            return "the tree has no tasks yet: update_project_context, then decompose ROOT"
        if state.get("planning_needed"):
            return str(state["planning_needed"]) + ": update the tree to match it"
        if self._all_terminal_unconfirmed():
            return "every task is terminal: mark ROOT completed (or blocked), or add the tasks still needed"
        return None

    def _notices(self) -> list[str]:
        state, llm = self.core.state, self._llm_state()
        out = []
        safe = state.get("safe_mode") or {}
        if safe and not safe.get("kind"):
            out.append(
                f"SAFE MODE: {safe.get('reason')}. Rebuild the task tree from the task file and the files "
                "on disk; no worker starts in this cycle."
            )
        review = llm.get("pending_review")
        if review and not review.get("consumed"):
            out.append(
                f"A reflection review is ready ({review.get('path')}); advisory: "
                + " | ".join(review.get("recommendations") or [review.get("excerpt", "")[:600]])
            )
        for wid in self._new_stuck():
            out.append(f"worker {wid} looks stuck or looping: decide whether to kill it")
        return out

    def _run_tools(
        self, uses: list[dict], reply: Reply, tool_calls: int, max_tools: int, names: list[str]
    ) -> tuple[list[dict], str | None, int]:
        results: list[dict] = []
        stop: str | None = None
        for i, use in enumerate(uses):
            if stop:
                text, ok = f"not run: the cycle ended ({stop})", False
            elif tool_calls >= max_tools:
                stop = f"cap of {max_tools} tool calls (AURA_MAX_TOOL_CALLS_PER_CYCLE)"
                text, ok = f"not run: {stop}", False
            elif reply.stop_reason == "max_tokens" and i == len(uses) - 1:
                text, ok = (
                    "not run: your reply was cut at max_tokens, so this input may be incomplete; "
                    "send it again, smaller",
                    False,
                )
            else:
                assert self.toolbox is not None  # set when the planner starts
                result = self.toolbox.run(use["name"], use.get("input"))
                tool_calls += 1
                names.append(use["name"])
                text, ok = result.text, result.ok
                self.record("tool", tool=use["name"], input=_short(use.get("input")), ok=ok, result=text[:300])
                if result.ends_cycle:
                    stop = "no_op"
                    self.record("no_op", reason=str((use.get("input") or {}).get("reason", ""))[:300])
                    self._remember_text(f"no_op: {(use.get('input') or {}).get('reason', '')}")
            block = {"type": "tool_result", "tool_use_id": use["id"], "content": text[:MAX_RESULT_CHARS]}
            if not ok:
                block["is_error"] = True
            results.append(block)
        return results, stop, tool_calls

    def _remember_text(self, text: str) -> None:
        llm = self._llm_state()
        llm["recent"] = (llm["recent"] + [{"ts": time.time(), "text": text[:300]}])[-RECENT_KEEP:]

    def _account(self, reply: Reply, source: str) -> None:
        self.daemon.costbook.record_call(
            self.core.state,
            source=source,
            cycle=self.cycle_no,
            model=reply.model,
            provider=self.client.provider_name if self.client else "",
            usage=reply.usage,
            attempts=reply.attempts,
        )
        self.daemon.refresh_budget()

    def _left_safe_mode(self, reply: Reply) -> None:
        safe = self.core.state.get("safe_mode") or {}
        if safe.get("kind") != "api":
            return
        self.core.state["safe_mode"] = None
        self.core.decisions.record(
            Kind.SAFE_MODE_LEFT,
            cycle=self.cycle_no,
            by="brain",
            reason="the model API answered again",
            since=safe.get("since"),
        )
        self.log.info(Kind.SAFE_MODE_LEFT, after_s=round(time.time() - float(safe.get("since") or time.time()), 1))
        self.daemon.publish(Kind.SAFE_MODE_LEFT, reason="the model API answered again")

    # -- after the cycle ----------------------------------------------------------------------------
    def _succeeded(self, why: list[str], outcome: dict) -> None:
        state, llm = self.core.state, self._llm_state()
        llm["model_cycles"] += 1
        llm.update(
            failures_in_row=0,
            skipped_in_row=0,
            news=[],
            last_why=why,
            pending_why=[],
            asked_to_confirm=self._all_terminal_unconfirmed(),
        )
        llm["reported_stuck"] = sorted(set(llm["reported_stuck"]) | set(self._new_stuck()))
        try:
            llm["decisions_offset"] = os.path.getsize(self.core.decisions.path)
        except OSError:
            pass
        state.pop("pending_task_diff", None)
        state.pop("planning_needed", None)
        questions.mark_told(state, self.told)
        if llm.get("pending_review"):
            llm["pending_review"]["consumed"] = True
        safe = state.get("safe_mode") or {}
        if safe and not safe.get("kind"):
            state["safe_mode"] = None
            reason = "the model rebuilt the plan after the state reset"
            self.core.decisions.record(Kind.SAFE_MODE_LEFT, cycle=self.cycle_no, by="brain", reason=reason)
            self.daemon.publish(Kind.SAFE_MODE_LEFT, reason=reason)
        cycle_cost = (state.get("costs", {}).get("cycles", {}) or {}).get(str(self.cycle_no), {})
        self.core.decisions.record(
            "model_cycle",
            cycle=self.cycle_no,
            by="brain",
            why=why,
            rounds=outcome["rounds"],
            tool_calls=outcome["tool_calls"],
            ended_by=outcome["ended_by"],
            usd=cycle_cost.get("usd"),
            prompt_tokens=cycle_cost.get("prompt_tokens"),
        )
        self.memory.write_session(self.cycle_no, outcome["tools"], outcome["ended_by"], bool(state.get("safe_mode")))
        if self.review_due():
            self._review()

    def _failed(self, exc: ModelError) -> dict:
        state, llm = self.core.state, self._llm_state()
        llm["failures_in_row"] += 1
        self.log.warning(
            "model_call_failed",
            cycle=self.cycle_no,
            error=str(exc)[:300],
            status=exc.status,
            kind=exc.kind,
            attempts=exc.attempts,
            failures_in_row=llm["failures_in_row"],
        )
        self.core.decisions.record(
            "model_error",
            cycle=self.cycle_no,
            by="brain",
            error=str(exc)[:500],
            status=exc.status,
            error_kind=exc.kind,
            attempts=exc.attempts,
        )
        if self.client is not None and exc.kind == "client":
            self.client = None
        if llm["failures_in_row"] >= self.cfg.integer("AURA_SAFE_MODE_AFTER") and not (state.get("safe_mode") or {}):
            reason = f"{llm['failures_in_row']} model cycles failed in a row; last: {str(exc)[:200]}"
            state["safe_mode"] = {"since": time.time(), "reason": reason, "kind": "api"}
            self.core.decisions.record(Kind.SAFE_MODE_ENTERED, cycle=self.cycle_no, by="brain", reason=reason)
            self.log.error(Kind.SAFE_MODE_ENTERED, reason=reason)
            self.daemon.publish(Kind.SAFE_MODE_ENTERED, reason=reason)
        if (state.get("safe_mode") or {}).get("kind") == "api":
            return {"model_error": str(exc)[:200], **self._retry_hint()}
        retry = min(self.cfg.number("AURA_CYCLE_INTERVAL"), max(1.0, 4 * self.cfg.number("AURA_API_RETRY_BASE_DELAY")))
        return {"model_error": str(exc)[:200], "retry_in": retry}

    def review_due(self, now: float | None = None) -> bool:
        """AURA_DEEP_REFLECTION_INTERVAL minutes have passed since the last review, or since the run
        started (the state's creation) when there was none. Both times live in state.json, so a
        brain restart does not reset the clock. 0 or less: never."""
        minutes = self.cfg.number("AURA_DEEP_REFLECTION_INTERVAL")
        if minutes <= 0:
            return False
        now = self.clock() if now is None else now
        llm = self._llm_state()
        since = (
            llm.get("last_review_at") or self.core.state.get("created_at") or llm.setdefault("review_clock_from", now)
        )
        return now - float(since) >= minutes * 60.0

    def _review(self) -> None:
        """A reflection review: a separate, tool-less call; advisory input for the next cycle."""
        llm = self._llm_state()
        # set before the call: a failed review waits for the next interval instead of retrying every cycle
        llm["last_review_at"] = self.clock()
        text_in = ctxmod.review_context(self.core, self.memory.for_context(1500), self.core.decisions.recent(30))
        try:
            reply = self._client().create(
                [{"type": "text", "text": ctxmod.REVIEW_PROMPT}],
                [],
                [{"role": "user", "content": text_in}],
                max_tokens=min(self.cfg.integer("AURA_API_MAX_TOKENS"), 2048),
            )
        except ModelError as exc:
            self.log.warning("review_failed", error=str(exc)[:300])
            return
        self._account(reply, "review_cycle")
        text = reply.text() or "(the model returned no text)"
        path = self.memory.save_review(text)
        recs = recommendations(text)
        self.memory.append("lesson", "Reflection review completed" + (": " + "; ".join(recs) if recs else ""))
        llm["pending_review"] = {
            "path": str(Path(path).relative_to(self.paths.root)),
            "excerpt": text[:1800],
            "recommendations": recs,
            "created_at": time.time(),
            "consumed": False,
        }
        self.core.decisions.record("review", cycle=self.cycle_no, by="brain", path=str(path), recommendations=recs)


def _short(value: Any, limit: int = 300) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text[:limit]
