"""The `attnstudy` command as a user types it, run in a child process, and what its output
must look like. Functions and constants only: importing this module runs nothing."""

import os
import subprocess
import sys
from pathlib import Path

ATTNSTUDY = Path(sys.executable).with_name("attnstudy")
SECRET = "Hunter2-q7Zx"  # a password unique enough to grep for


def attnstudy(*args, env: dict | None = None, timeout: float = 600) -> tuple[int, str]:
    """The command as a user types it; (exit status, stdout and stderr together). The
    timeout only bounds a hang."""
    done = subprocess.run(
        [ATTNSTUDY, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or clean_env(),
    )
    return done.returncode, done.stdout + done.stderr


def clean_env() -> dict:
    drop = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    return {k: v for k, v in os.environ.items() if k not in drop}


def assert_one_error_line(status: int, out: str, shows: str | None = None) -> None:
    assert status == 2, out
    errors = [line for line in out.splitlines() if line.startswith("attnstudy: error:")]
    assert len(errors) == 1 and "Traceback" not in out, out
    if shows:
        assert shows in errors[0], out
