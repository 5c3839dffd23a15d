"""One supervisor, several executors: each worker runs under the one its record names (`executor`:
`local` by default, `slurm` where the run or its task asked for it), and every call for it goes there.
The Slurm executor is made only when a worker first needs it, so a local run never touches Slurm."""

from __future__ import annotations

from collections.abc import Callable, Collection

from .base import Executor, StartOrder

LOCAL = "local"


class Dispatch(Executor):
    name = "dispatch"

    def __init__(self, local: Executor, make: dict[str, Callable[[], Executor]]):
        super().__init__(local.on_start_report, local.on_end)
        self.executors: dict[str, Executor] = {LOCAL: local}
        self.make = make
        self.start_timeout = local.start_timeout

    def select(self, name: str | None) -> Executor:
        name = name or LOCAL
        if name not in self.executors:
            made = self.make[name]()
            made.setup()
            self.executors[name] = made
        return self.executors[name]

    def of(self, rec: dict) -> Executor:
        return self.select(rec.get("executor"))

    def setup(self) -> None:
        self.executors[LOCAL].setup()

    def start(self, order: StartOrder) -> None:
        self.select(order.executor).start(order)

    def facts(self, report: dict) -> dict:
        return self.select(report.get("executor")).facts(report)

    def watch(self, rec: dict) -> None:
        self.of(rec).watch(rec)

    def collect(self, worker_id: str) -> dict | None:
        found = None
        for executor in self.executors.values():
            found = executor.collect(worker_id) or found
        return found

    def supervised(self, rec: dict) -> bool:
        return self.of(rec).supervised(rec)

    def orphan(self, rec: dict, start_report: dict) -> dict | None:
        return self.of(rec).orphan(rec, start_report)

    def running(self, rec: dict) -> bool:
        return self.of(rec).running(rec)

    def ending(self, running: Collection[str]) -> set[str]:
        return set().union(*(executor.ending(running) for executor in self.executors.values()))

    def any_running(self, recs: list[dict]) -> bool:
        by_executor: dict[str, list[dict]] = {}
        for rec in recs:
            by_executor.setdefault(rec.get("executor") or LOCAL, []).append(rec)
        return any(self.select(name).any_running(group) for name, group in by_executor.items())

    def terminate(self, rec: dict) -> bool:
        return self.of(rec).terminate(rec)

    def force_kill(self, rec: dict) -> bool:
        return self.of(rec).force_kill(rec)

    def find(self, rec: dict) -> dict | None:
        return self.of(rec).find(rec)

    def place(self, rec: dict, ceiling: float, in_use: list[int]) -> list[int] | None:
        return self.of(rec).place(rec, ceiling, in_use)

    def reap(self) -> None:
        for executor in self.executors.values():
            executor.reap()

    def close(self) -> None:
        for executor in self.executors.values():
            executor.close()
