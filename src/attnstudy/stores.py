"""Where a study keeps its state: the Optuna storage and MLflow tracking URLs and the runs
folder (`Stores`), checked before anything is written (`check_stores`), and the Optuna
storage opened with its errors said in one line (`open_storage`)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy

from attnstudy.config import ConfigError
from attnstudy.redact import redact
from attnstudy.tracking_check import check_tracking_uri, default_tracking_uri

MOST_GRACE_S = 86400  # a worker silent for a day is dead


@dataclass(frozen=True)
class Stores:
    """Where a study keeps its state: Optuna storage, MLflow tracking, artifacts."""

    runs_dir: Path
    storage_url: str
    tracking_uri: str
    heartbeat_s: int = 5
    grace_s: int = 20
    poll_s: float = 2.0


def make_stores(
    runs_dir: str | Path = "runs",
    storage: str | None = None,
    tracking_uri: str | None = None,
    heartbeat_s: int = 5,
    grace_s: int = 20,
) -> Stores:
    if heartbeat_s < 1 or grace_s <= heartbeat_s or grace_s > MOST_GRACE_S:
        raise ConfigError(
            f"--heartbeat/--grace: need 1 <= heartbeat < grace <= {MOST_GRACE_S} (seconds), got "
            f"{heartbeat_s} and {grace_s}"
        )
    runs = Path(runs_dir).resolve()
    return Stores(
        runs,
        storage or f"sqlite:///{runs}/optuna.db",
        tracking_uri or default_tracking_uri(runs),
        heartbeat_s,
        grace_s,
        min(2.0, heartbeat_s),
    )


def check_stores(stores: Stores, study: str | None = None) -> None:
    """Refuse stores that cannot be opened before anything is written to either (only the
    runs directory is created on demand); with `study`, a tracking server must let this
    user write to the study's experiment."""
    for flag, url in (("--storage", stores.storage_url), ("--tracking-uri", stores.tracking_uri)):
        folder = sqlite_path(url).parent if url.startswith("sqlite:///") else None
        if folder and folder != stores.runs_dir and not folder.is_dir():
            raise ConfigError(
                f"{flag} {redact(url)}: folder {folder} does not exist; allowed: a SQLite file "
                "in an existing folder, or a database server URL"
            )
    check_tracking_uri(stores.tracking_uri, study)


def open_storage(url: str, **kwargs) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at `url` (ConfigError if it cannot be opened); a fresh database
    may be initialised by several workers at once, so a lost race is retried."""
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url), **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == 2:
                raise
            time.sleep(1)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as err:
            raise ConfigError(
                f"--storage {redact(url)}: cannot open it ({redact(_first_line(err))}); allowed: "
                "sqlite:///PATH, postgresql+psycopg2://USER@HOST:PORT/DB or another SQLAlchemy URL"
            ) from None
    raise AssertionError("unreachable")


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///").split("?")[0])


def make_folder(url: str) -> None:
    """Create the folder of a SQLite store (check_stores lets only the runs dir be missing)."""
    if url.startswith("sqlite:///"):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)


def _first_line(err: BaseException) -> str:
    """The driver's message of a database error (or the missing driver), on one line."""
    lines = str(getattr(err, "orig", None) or err.__cause__ or err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _engine_kwargs(url: str) -> dict:
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
