"""The environment a worker gets: an allow-list, never a copy of the daemon's.

Why: a worker runs an agent with its permission checks off, so it must not find the daemon's API
keys in its environment. Workers get the variables below, the names listed in AURA_WORKER_ENV_PASS (comma-separated, `*`
allowed at the end; set in config.env, with -O, or in the daemon's environment), what their
backend needs, and Aura's own task and limit variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aura.runtime.config import Config
from aura.runtime.limits import LIMIT_KEYS

BASE_ALLOW = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "JAVA_HOME",
    "GOPATH",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "NVM_DIR",
    "NODE_PATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    # GPU and numeric runtimes: without these a worker on a GPU box may not find the driver or CUDA
    "LD_LIBRARY_PATH",
    "XDG_CACHE_HOME",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "HF_HOME",
    "TORCH_HOME",
    "PYTORCH_CUDA_ALLOC_CONF",
    "TRITON_CACHE_DIR",
    "XLA_FLAGS",
)
BASE_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "NCCL_")


def _patterns(cfg_value: str) -> list[str]:
    return [p.strip() for p in cfg_value.split(",") if p.strip()]


def _allowed(name: str, extra: list[str]) -> bool:
    if name in BASE_ALLOW or name.startswith(BASE_PREFIXES):
        return True
    for pat in extra:
        if pat.endswith("*") and name.startswith(pat[:-1]) or name == pat:
            return True
    return False


def worker_env(
    cfg: Config, source: Mapping[str, str] | None = None, extra_pass: list[str] | None = None
) -> dict[str, str]:
    """The allow-listed base environment plus Aura's limit variables."""
    src = os.environ if source is None else source
    # AURA_WORKER_ENV_PASS from the configuration (config.env, -O, the environment at load time)
    # and from the source environment itself: the names of both are passed
    extra = _patterns(cfg.text("AURA_WORKER_ENV_PASS")) + _patterns(src.get("AURA_WORKER_ENV_PASS", ""))
    extra += extra_pass or []
    env = {k: v for k, v in src.items() if _allowed(k, extra)}
    for key in LIMIT_KEYS:
        env[key] = cfg.text(key)
    env["AURA_WORKER_FORBID_OFFLOAD"] = "1"
    cuda = cfg.text("AURA_WORKER_CUDA_VISIBLE_DEVICES")
    if cuda:
        env["CUDA_VISIBLE_DEVICES"] = cuda
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env
