"""Commands and limits that tests run workers against, shared by several test modules."""

from __future__ import annotations

import psutil

# A worker command that holds 400 MB for a minute: over any memory limit a test sets.
MEM_HOG = (
    "python3 -c \"import time; b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)\""
)

# A free-RAM reserve this machine has (so it passes the start check) but can never meet while anything
# runs: a spawn against it is refused with reserve_short.
UNMET_RAM_RESERVE_GB = round(psutil.virtual_memory().total / 1024**3 * 0.999, 3)
