"""budget: set the run budget now (`aura budget USD`); raising it resumes a run stopped at its budget.

Request: {usd: float}
Reply: {old_usd: float, budget: dict, costs: dict}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aura.ipc.envelope import BadArgs
from aura.runtime.ops import Arg, operation
from aura.runtime.settings_check import value_problem

from .. import costs as costmod

if TYPE_CHECKING:
    from ..main import BrainDaemon


@operation("budget", "brain", Arg("usd", float))
def budget(brain: BrainDaemon, args: dict) -> dict:
    core = brain.core
    assert core is not None
    usd = args["usd"]
    problem = value_problem("AURA_BUDGET_USD", str(usd), "`aura budget`")
    if problem:
        raise BadArgs(problem)
    old = costmod.budget_limit(core.state, brain.cfg)
    core.state.setdefault("budget", {})["override_usd"] = usd
    brain.refresh_budget()
    core.decisions.record("budget_set", cycle=core.state.get("total_cycles"), by="user", old_usd=old, new_usd=usd)
    core.save()
    brain.log.info("budget_set", old_usd=old, new_usd=usd)
    brain.request_cycle("wake: budget changed", 0)
    return {"old_usd": old, "budget": core.state.get("budget"), "costs": costmod.summary(core.state)}
