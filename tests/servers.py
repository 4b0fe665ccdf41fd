"""Real servers for the scale-out test: PostgreSQL (the Debian package) and `mlflow server`,
on 127.0.0.1 at free ports, in temporary folders; each context manager stops its server
(the whole process group) and removes its files."""

from __future__ import annotations

import functools
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

PORT_TAKEN = "already in use"  # logged by a server whose port another program took first


class PortTaken(Exception):
    """The free port was taken between choosing it and the server's bind."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_a_free_port(start, tries: int = 5):
    """`start(port)` on a free port; on another one if a program took it before the server
    bound it (the server reports PortTaken). Returns what `start` returns."""
    for _ in range(tries - 1):
        try:
            return start(free_port())
        except PortTaken:
            continue
    return start(free_port())


def wait_for(ready, proc: subprocess.Popen, log: Path, timeout: float, what: str) -> None:
    """Poll `ready` until it holds. The timeout only bounds a hang: starting took up to
    17 s (mlflow server) with both cores busy, and nothing checked depends on it."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            if PORT_TAKEN in log.read_text():
                raise PortTaken(what)
            raise RuntimeError(f"{what} exited on start:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def listens(pgid: int, port: int) -> bool:
    """Whether a process of group `pgid` listens on 127.0.0.1:`port`, i.e. the server that
    answers there is ours, not another program that took the same free port (Linux /proc)."""
    table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    address = f"0100007F:{port:04X}"
    listening = (c for c in map(str.split, table) if c[1] == address and c[3] == "0A")
    sockets = {f"socket:[{c[9]}]" for c in listening}
    for process in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(process.name)) == pgid and any(
                os.readlink(fd) in sockets for fd in (process / "fd").iterdir()
            ):
                return True
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return False


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


def _start_postgres(bindir: Path, root: Path, user: dict, port: int):
    """The server on `port`, once it answers on its own socket in `root` (so it is ours,
    and it has bound the TCP port: PostgreSQL exits if it cannot)."""
    data, log = root / "data", root / "server.log"
    server = subprocess.Popen(
        [bindir / "postgres", "-D", data, "-p", str(port), "-k", root]
        + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **user,
    )
    ready = [bindir / "pg_isready", "-q", "-h", root, "-p", str(port)]
    try:
        wait_for(lambda: subprocess.run(ready).returncode == 0, server, log, 120, "PostgreSQL")
    except BaseException:
        stop(server, signal.SIGINT)
        raise
    return server, port


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster with databases `optuna` and `mlflow`; yields the
    server's URL (append /optuna or /mlflow)."""
    bindir, user = _postgres_bin(), _unprivileged()
    root = Path(tempfile.mkdtemp(prefix="attnstudy-pg-"))
    if user:
        shutil.chown(root, "postgres", "postgres")
    init = [bindir / "initdb", "-D", root / "data", "-U", "attnstudy", "-A", "trust", "--no-sync"]
    _run(init, **user)
    server = None
    try:
        server, port = on_a_free_port(functools.partial(_start_postgres, bindir, root, user))
        address = ["-h", "127.0.0.1", "-p", str(port), "-U", "attnstudy"]
        for database in ("optuna", "mlflow"):
            _run([bindir / "createdb", *address, database])
        yield f"postgresql+psycopg2://attnstudy@127.0.0.1:{port}"
    finally:
        if server:
            stop(server, signal.SIGINT)  # PostgreSQL's fast shutdown
        shutil.rmtree(root, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def plain_mlflow(backend_store: str, artifacts: Path, port: int) -> tuple[list, dict]:
    """The argv and environment of `mlflow server` without authentication."""
    argv = [Path(sys.executable).with_name("mlflow"), "server", "--workers", "1"]
    argv += ["--backend-store-uri", backend_store, "--artifacts-destination", str(artifacts)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    return argv, os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def _start_mlflow(command, log: Path, port: int):
    """`mlflow server` as `command(port)` starts it, once its /health answers and the
    listener is its own."""
    argv, env = command(port)
    server = subprocess.Popen(
        argv, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    url = f"http://127.0.0.1:{port}"

    def ours() -> bool:
        return listens(server.pid, port) and _answers(f"{url}/health")

    try:
        wait_for(ours, server, log, 300, "mlflow server")
    except BaseException:
        stop(server, signal.SIGTERM)
        raise
    return server, url


@contextmanager
def mlflow_server(backend_store: str, artifacts: Path, command=None) -> Iterator[str]:
    """`mlflow server` over `backend_store`, serving artifacts stored under `artifacts`, on
    127.0.0.1 at a free port; yields its http URL. `command(port)` gives its argv and
    environment (default: `plain_mlflow`); its output goes to mlflow-server.log beside
    `artifacts`."""
    command = command or functools.partial(plain_mlflow, backend_store, artifacts)
    log = artifacts.parent / "mlflow-server.log"
    server, url = on_a_free_port(functools.partial(_start_mlflow, command, log))
    try:
        yield url
    finally:
        stop(server, signal.SIGTERM)


def dump(server: str, database: str) -> str:
    """Everything `database` of the `postgres()` server at `server` holds, as SQL text."""
    port = server.rsplit(":", 1)[1]
    argv = [_postgres_bin() / "pg_dump", "-h", "127.0.0.1", "-p", port, "-U", "attnstudy"]
    done = subprocess.run([*argv, database], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout
