"""Fail fast on a tracking URI before anything is written: a store MLflow cannot use, or a
`mlflow server` that does not answer, refuses this machine's MLflow credentials, or does
not let this user write to the study's experiment. One `ConfigError` line each, with what
is allowed; every URL shown through `redact`."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from attnstudy.config import ConfigError
from attnstudy.redact import redact
from attnstudy.schema import EXPERIMENT_KIND

DEFAULT_RUNS = Path("runs")


def default_tracking_uri(runs_dir: Path = DEFAULT_RUNS) -> str:
    """$MLFLOW_TRACKING_URI, else a SQLite store in runs_dir (separate from Optuna's)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{runs_dir.resolve()}/mlflow.db"


TRACKING_ALLOWED = "http(s)://HOST:PORT of a running `mlflow server`, sqlite:///PATH, or a DB URL"
CREDENTIALS = (
    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment, or "
    "mlflow_tracking_username and mlflow_tracking_password under [mlflow] in "
    "~/.mlflow/credentials (chmod 600)"
)
Ask = Callable[..., object]  # (endpoint, method="GET", timeout=30, **kwargs) -> response


def check_tracking_uri(uri: str, study: str | None = None) -> None:
    """Fail fast (ConfigError) on a tracking URI MLflow cannot use, before anything is
    written: a server that does not answer (MLflow itself retries for minutes) or refuses
    this machine's MLflow credentials, a study's experiment this user may not write to,
    or a URI no MLflow store accepts. A SQLite store is created on first use."""
    if uri.startswith(("http://", "https://")):
        check_server(uri, study)
    elif not uri.startswith("sqlite:///"):
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException as Unknown

        try:
            MlflowClient(uri)
        except MlflowException as err:
            why = "unknown scheme" if isinstance(err, Unknown) else str(err).split(". ")[0][:200]
            raise ConfigError(
                f"--tracking-uri {redact(uri)}: MLflow cannot use it ({redact(why)}); allowed: "
                + TRACKING_ALLOWED
            ) from None


def check_server(uri: str, study: str | None = None) -> None:
    """The `mlflow server` at `uri` answers, takes the credentials MLflow reads on this
    machine (never the URL's: a command line shows in `ps` and in shell history), and, with
    `study`, lets this user write to the study's experiment if it exists (a study creates
    it otherwise). The only write, on success, is the experiment tag a study sets anyway."""
    from mlflow.utils.credentials import get_default_host_creds

    where = f"--tracking-uri {redact(uri)}"
    if "@" in urllib.parse.urlsplit(uri).netloc:
        raise ConfigError(
            f"{where}: a user or password in the URL is refused (a command line shows in `ps` "
            f"and in shell history); allowed: {CREDENTIALS}"
        )
    creds = get_default_host_creds(uri)  # TLS settings included (MLFLOW_TRACKING_*_CERT_PATH)
    ask = _asker(creds, where)
    _check_answers(ask, where)
    _check_login(ask, where, creds)
    if study is not None:
        _check_may_write(ask, where, _user(creds), study)


def _asker(creds, where: str) -> Ask:
    """A request to the server with `creds`, one ConfigError line when nothing answers."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.rest_utils import http_request

    def ask(endpoint: str, method: str = "GET", timeout: int = 30, **kwargs):
        try:
            return http_request(creds, endpoint, method, max_retries=0, timeout=timeout, **kwargs)
        except MlflowException as err:
            raise ConfigError(
                f"{where}: no MLflow server answers there ({_why(err)}); allowed: "
                + TRACKING_ALLOWED
            ) from None

    return ask


def _check_answers(ask: Ask, where: str) -> None:
    health = ask("/health", timeout=5)
    if health.status_code != 200:
        raise ConfigError(
            f"{where}: no MLflow server answers there (/health: {health.status_code}); "
            "allowed: " + TRACKING_ALLOWED
        )


def _check_login(ask: Ask, where: str, creds) -> None:
    """The server takes this user's password (401 said in words: which part is missing)."""
    answer = ask("/api/2.0/mlflow/experiments/search", params={"max_results": 1})
    user = _user(creds)
    if answer.status_code == 401:
        if creds.username and creds.password:
            why = f"it refuses the password of {user} (wrong password, or no such user)"
        elif creds.username:
            why = f"it asks for a password, and none is set for {user}"
        else:
            why = "it asks for a user and a password, and none is set"
        raise ConfigError(f"{where}: {why}; set them in {CREDENTIALS}")
    if answer.status_code != 200:
        raise ConfigError(f"{where}: the server answers {answer.status_code} to {user}")


def _check_may_write(ask: Ask, where: str, user: str, study: str) -> None:
    """The study's experiment, if it exists, takes this user's write: its kind tag."""
    found = ask("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": study})
    if found.status_code == 404:
        return
    if found.status_code == 200:
        experiment = found.json()["experiment"]["experiment_id"]
        key, value = next(iter(EXPERIMENT_KIND.items()))
        tag = {"experiment_id": experiment, "key": key, "value": value}
        found = ask("/api/2.0/mlflow/experiments/set-experiment-tag", "POST", json=tag)
        if found.status_code == 200:
            return
    raise ConfigError(
        f"{where}: {user} may not write to the study's experiment {study!r} (the server "
        f"answers {found.status_code}); the server's admin grants it (README, Scale-out)"
    )


def _user(creds) -> str:
    return f"user {creds.username!r}" if creds.username else "no user"


def _why(err: BaseException) -> str:
    """Why a request failed, in a few words (requests' message runs over several lines)."""
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] ([^\"')]+)|(certificate verify failed[^\"')]*)", text)
    found = found or re.search(r"(timed out)", text)
    return redact(next(g for g in found.groups() if g) if found else text.splitlines()[0][:200])
