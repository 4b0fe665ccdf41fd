"""Real servers for the scale-out test: PostgreSQL (the Debian package) and `mlflow server`,
on 127.0.0.1 at free ports, in temporary folders; each context manager stops its server
(the whole process group) and removes its files."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(ready, proc: subprocess.Popen, log: Path, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen, sig: int) -> None:
    """Signal the process group, then kill it if it has not exited within 15 s."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _postgres_bin() -> Path:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda p: int(p.split("/")[4]))  # the newest major version last
    if not found:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    return Path(found[-1]).parent


def _unprivileged() -> dict:
    """Popen arguments that run PostgreSQL, which refuses root, as the `postgres` user."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root, and no `postgres` user to run PostgreSQL as")
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _run(argv: list, **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout}{done.stderr}"


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster with databases `optuna` and `mlflow`; yields the
    server's URL (append /optuna or /mlflow)."""
    bindir, user = _postgres_bin(), _unprivileged()
    root = Path(tempfile.mkdtemp(prefix="attnstudy-pg-"))
    if user:
        shutil.chown(root, "postgres", "postgres")
    data, log, port = root / "data", root / "server.log", free_port()
    init = [bindir / "initdb", "-D", data, "-U", "attnstudy", "-A", "trust", "--no-sync"]
    _run(init, **user)
    server = subprocess.Popen(
        [bindir / "postgres", "-D", data, "-p", str(port), "-k", root]
        + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **user,
    )
    try:
        address = ["-h", "127.0.0.1", "-p", str(port), "-U", "attnstudy"]
        ready = [bindir / "pg_isready", "-q", *address]
        wait_for(lambda: subprocess.run(ready).returncode == 0, server, log, 60, "PostgreSQL")
        for database in ("optuna", "mlflow"):
            _run([bindir / "createdb", *address, database])
        yield f"postgresql+psycopg2://attnstudy@127.0.0.1:{port}"
    finally:
        stop(server, signal.SIGINT)  # PostgreSQL's fast shutdown
        shutil.rmtree(root, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def mlflow_server(backend_store: str, artifacts: Path) -> Iterator[str]:
    """`mlflow server` over `backend_store`, serving artifacts stored under `artifacts`;
    yields its http URL."""
    port = free_port()
    log = artifacts.parent / "mlflow-server.log"
    argv = [Path(sys.executable).with_name("mlflow"), "server", "--workers", "1"]
    argv += ["--backend-store-uri", backend_store, "--artifacts-destination", str(artifacts)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        argv,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/health"), server, log, 90, "mlflow server")
        yield url
    finally:
        stop(server, signal.SIGTERM)
