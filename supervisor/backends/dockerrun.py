"""The worker process of a containerised worker: runs `docker run ...` and makes sure the container
goes when the worker is stopped.

Why: the supervisor stops a worker by signalling its process group, but the container's processes
are not in that group (they are children of the container runtime), and a SIGKILL of the docker
client leaves the container running. So on SIGTERM this wrapper asks docker to stop the container
(`docker kill --signal TERM`), waits up to --grace seconds, then removes it (`docker rm -f`); it
also removes it after any exit of the client. Exit status: the client's (docker run passes on the
container's exit code).

    python -I dockerrun.py --docker DOCKER --name NAME --grace S -- RUN_ARGS...
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

DOCKER_CALL_TIMEOUT = 20.0


def docker_call(docker: str, *args: str) -> int | None:
    """One short docker command, output discarded; None when it could not run or took too long."""
    try:
        return subprocess.run(
            [docker, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=DOCKER_CALL_TIMEOUT,
        ).returncode
    except (OSError, subprocess.TimeoutExpired):
        return None


class Runner:
    def __init__(self, docker: str, name: str, grace: float):
        self.docker, self.name, self.grace = docker, name, grace
        self.stop_requested: float | None = None

    def on_term(self, _signum: int, _frame: object) -> None:
        if self.stop_requested is None:
            self.stop_requested = time.monotonic()
            docker_call(self.docker, "kill", "--signal", "TERM", self.name)

    def run(self, run_args: list[str]) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_term)
        try:
            client = subprocess.Popen([self.docker, *run_args], stdin=subprocess.DEVNULL)
        except OSError as exc:
            print(f"could not start {self.docker}: {exc}", file=sys.stderr)
            return 127
        while client.poll() is None:
            if self.stop_requested is not None and time.monotonic() - self.stop_requested > self.grace:
                docker_call(self.docker, "rm", "-f", self.name)
                break
            time.sleep(0.1)
        try:
            code = client.wait(timeout=5)
        except subprocess.TimeoutExpired:
            client.kill()
            code = client.wait()
        docker_call(self.docker, "rm", "-f", self.name)
        return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockerrun")
    parser.add_argument("--docker", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("run_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    run_args = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    return Runner(args.docker, args.name, args.grace).run(run_args)


if __name__ == "__main__":
    sys.exit(main())
