"""The disk's share of Aura's exit figure at scale: N processes released at once, each writing a
small exit record as the native shim does (into the blocks of the reserve it made durable at the
start, padded to its size, fdatasynced, then renamed to exit.json), and the time until the last of
them is done.

Circus and supervisord keep no record of an exit, so this is time only Aura spends. Most of it is
N processes waking and ending on the machine's cores, not the disk: each round is also run with the
same writes and no flush (`unsynced`), and the difference between the two is what keeping every
exit record durable costs on this machine's disk.

    python -m bench.fsyncfloor --n 128 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from aura.runtime.exitfile import RESERVE_BYTES

from .stats import percentile

RECORD = b'{"exit_code": 0, "signal": null, "started_at": 1.0, "ended_at": 2.0, "duration_s": 1.0}\n'


def one_round(n: int, durable: bool = True) -> float:
    """Seconds from the release of `n` forked writers to the end of the last; `durable=False`: the
    same writes with no fdatasync."""
    base = tempfile.mkdtemp(prefix="aura-fsync-")
    try:
        folders = [os.path.join(base, f"w{i}") for i in range(n)]
        for folder in folders:
            os.mkdir(folder)
            _reserve(folder)
        go_r, go_w = os.pipe()
        kids = [_writer(folder, go_r, go_w, durable) for folder in folders]
        os.close(go_r)
        time.sleep(0.2)  # every writer is waiting on the pipe
        started = time.perf_counter()
        os.close(go_w)
        for pid in kids:
            os.waitpid(pid, 0)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _writer(folder: str, go_r: int, go_w: int, durable: bool) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        os.close(go_w)
        os.read(go_r, 1)  # EOF: released
        spare = os.path.join(folder, "exit.reserve")
        fd = os.open(spare, os.O_WRONLY)
        os.pwrite(fd, RECORD.ljust(RESERVE_BYTES), 0)
        if durable:
            os.fdatasync(fd)
        os.close(fd)
        os.rename(spare, os.path.join(folder, "exit.json"))
    finally:
        os._exit(0)


def _reserve(folder: str) -> None:
    """The reserve as the shim leaves it once its worker runs: written, then the file and its folder fsynced."""
    spare = os.path.join(folder, "exit.reserve")
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b" " * RESERVE_BYTES)
    os.fsync(fd)
    os.close(fd)
    dfd = os.open(folder, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)


def measure(sizes: list[int], rounds: int) -> dict:
    """Each N's rounds in ms, with their median; durable and unsynced rounds take turns."""
    out = {}
    for n in sizes:
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(rounds):
            for durable in (True, False):
                times[durable].append(round(one_round(n, durable) * 1000, 1))
        out[str(n)] = {
            "median_ms": percentile(times[True], 50),
            "rounds_ms": times[True],
            "unsynced_median_ms": percentile(times[False], 50),
            "unsynced_rounds_ms": times[False],
        }
    return out


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a whole number of at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=_positive, action="append", help="writers released at once (repeatable)")
    parser.add_argument("--rounds", type=_positive, default=5)
    args = parser.parse_args(argv)
    json.dump(measure(args.n or [8, 32, 128], args.rounds), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
