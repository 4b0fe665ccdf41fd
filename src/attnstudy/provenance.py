"""Provenance of a run, as tags: the code (git commit, local edits, package versions) and
the machine (CPU model, torch threads, device) that produced it. A seed reproduces a run
bit for bit only with the same code on the same hardware with the same thread count.
"""

from __future__ import annotations

import getpass
import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

from attnstudy.config import Config
from attnstudy.schema import (
    CPU,
    GIT_COMMIT,
    GIT_DIRTY,
    SOURCE_COMMIT,
    SOURCE_NAME,
    SOURCE_TYPE,
    THREADS,
    USER,
    version_tag,
)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def provenance_tags() -> dict[str, str]:
    """Git commit of the code (and whether tracked files had local edits) and versions of
    the packages that produced a run; with MLflow's own source and user tags, which its UI
    shows."""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    commit = _git("rev-parse", "HEAD")
    tags = {
        GIT_COMMIT: commit or "unknown",
        GIT_DIRTY: "unknown" if dirty is None else str(bool(dirty)).lower(),
        SOURCE_NAME: "attnstudy study run",
        SOURCE_TYPE: "LOCAL",
        USER: _user(),
    }
    if commit:
        tags[SOURCE_COMMIT] = commit
    for package in ("torch", "mlflow", "optuna", "attnstudy"):
        tags[version_tag(package)] = version(package)
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        return "unknown"


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity set where the OS has one (Linux),
    else every core (macOS and Windows have no `os.sched_getaffinity`)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def host_tags(threads: int) -> dict[str, str]:
    """CPU model and torch threads: a seed reproduces a run bit for bit only on the same
    hardware with the same thread count."""
    return {CPU: cpu_model(), THREADS: str(threads)}


def device_name(cfg: Config) -> str:
    import torch

    from attnstudy.train import resolve_device

    device = resolve_device(cfg.device)
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
