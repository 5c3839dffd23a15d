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

JOB = """\
import os, sys, time
release, log = sys.argv[1], sys.argv[2]
with open(log, "a") as fh:
    while not os.path.exists(release):
        fh.write("step\\n"); fh.flush()
        time.sleep(0.1)
sys.exit(3)
"""

# A worker that starts a "training job", registers it in its process.json, starts a stray child it
# does not register, and then exits, holds memory or waits (its fourth argument).
REGISTERING_WORKER = f"""\
import json, os, subprocess, sys, time
release, own_session, pids_file, then = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
task_dir = os.environ["AURA_TASK_DIR"]
log = os.path.join(task_dir, "train_progress.log")
job = subprocess.Popen([sys.executable, "-c", {JOB!r}, release, log], start_new_session=own_session)
stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=own_session)
entry = {{"pid": job.pid, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kind": "training", "log_path": log}}
with open(os.path.join(task_dir, "process.json"), "w") as fh:
    json.dump({{"managed_subprocesses": [entry]}}, fh)
with open(pids_file + ".tmp", "w") as fh:
    json.dump({{"job": job.pid, "stray": stray.pid}}, fh)
os.replace(pids_file + ".tmp", pids_file)
if then == "hog":
    b = bytearray(300 * 1024 * 1024); b[::4096] = b"x" * len(b[::4096]); time.sleep(120)
if then == "wait":
    time.sleep(120)
"""
