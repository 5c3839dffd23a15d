"""The per-worker resource limits: their names, what each one measures, and the guard's modes.

The watchdog enforces them, the supervisor hands them to each worker (as environment variables
and per-task overrides) and the brain writes them into the worker's task.md: one list for all three.
"""

from __future__ import annotations

GUARD_KEY = "AURA_WORKER_RESOURCE_GUARD"
GUARD_ON = "on"  # the guard's modes, as guard_mode spells them
GUARD_DRY_RUN = "dry-run"  # sample, evaluate and say what would be killed; kill nothing
GUARD_OFF = "off"  # sample only
GUARD_MODES = (GUARD_ON, GUARD_DRY_RUN, GUARD_OFF)

# config key -> (metric, "max" ceiling or "min" reserve, unit)
LIMITS: dict[str, tuple[str, str, str]] = {
    "AURA_WORKER_MAX_CPU_PERCENT": ("cpu_percent", "max", "%"),
    "AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT": ("mem_percent", "max", "%"),
    "AURA_WORKER_MAX_SYSTEM_MEMORY_GB": ("rss_gb", "max", "GB"),
    "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB": ("system_free_gb", "min", "GB"),
    "AURA_WORKER_MAX_GPU_UTIL_PERCENT": ("gpu_util_percent", "max", "%"),
    "AURA_WORKER_MAX_GPU_MEMORY_PERCENT": ("gpu_mem_percent", "max", "%"),
    "AURA_WORKER_MAX_GPU_MEMORY_GB": ("gpu_mem_gb", "max", "GB"),
    "AURA_WORKER_MIN_GPU_MEMORY_FREE_GB": ("gpu_free_gb", "min", "GB"),
}
# what a worker is told (environment, task.md): the guard's mode, then each limit
LIMIT_KEYS = (
    GUARD_KEY,
    "AURA_WORKER_MAX_CPU_PERCENT",
    "AURA_WORKER_MAX_SYSTEM_MEMORY_PERCENT",
    "AURA_WORKER_MAX_GPU_UTIL_PERCENT",
    "AURA_WORKER_MAX_GPU_MEMORY_PERCENT",
    "AURA_WORKER_MAX_SYSTEM_MEMORY_GB",
    "AURA_WORKER_MIN_SYSTEM_MEMORY_FREE_GB",
    "AURA_WORKER_MAX_GPU_MEMORY_GB",
    "AURA_WORKER_MIN_GPU_MEMORY_FREE_GB",
)


def guard_mode(value: str) -> str:
    """`on`, `off` or `dry-run` for any accepted spelling of AURA_WORKER_RESOURCE_GUARD."""
    v = value.strip().lower()
    if v in ("dry-run", "dry_run", "dryrun"):
        return GUARD_DRY_RUN
    return GUARD_OFF if v in ("0", "false", "no", "off", "") else GUARD_ON
