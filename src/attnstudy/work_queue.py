"""The study's work queue in Optuna storage: one trial per grid point, claimed by exactly
one worker, kept alive by a heartbeat, and classified into per-point states.

- the launcher adds a WAITING trial for every point that has no result and no live trial;
- a worker claims a WAITING trial by moving it to RUNNING (a compare-and-set in the
  storage; queue updates are serialised by a file lock on SQLite and an advisory lock
  on PostgreSQL, since reads take no row locks);
- a trial ends COMPLETE (`status=ok`), or FAIL with `status` diverged / failed / killed;
- a worker that dies stops its trial's heartbeat; after the grace period any process
  fails the trial and queues its point again. Diverged trials are results and never
  rerun; crashed and interrupted ones are rerun by the next `study run`.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import threading
import traceback
import warnings
import zlib
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import sqlalchemy
from optuna.distributions import CategoricalDistribution, distribution_to_json
from optuna.trial import FrozenTrial, TrialState

from attnstudy.config import ConfigError
from attnstudy.redact import redact
from attnstudy.schema import BEST_VAL_SEQ_ACC
from attnstudy.stores import Stores, open_storage, sqlite_path

if TYPE_CHECKING:  # the queue imports no model code: it reads points, never builds them
    from attnstudy.study_config import GridPoint, StudySpec

GRID_KEY_ATTR, CONFIG_HASH_ATTR, STATUS_ATTR, REASON_ATTR, RUN_ID_ATTR = (
    "grid_key",
    "config_hash",
    "status",
    "reason",
    "mlflow_run_id",
)
WORKER_ATTR = "worker"  # user attr: host:pid of the process that runs the trial
BLOCK_ATTR = "block"  # user attr: the blocks that declare the point, comma-separated (if named)
SOLVABLE_ATTR = "solvable"  # user attr: False if the point cannot solve its task by construction
PARAMS_ATTR = "params"  # user attr: the point's axis values ({axis: value}), also its params
STATES_WITH_RESULT = ("done", "diverged")  # point states that hold a result
MAX_AUTO_RETRIES = 5  # kills of one point retried within a run; `study run` retries again


@dataclass
class PointState:
    point: GridPoint
    state: str  # done | diverged | running | failed | pending
    trial: FrozenTrial | None = None  # the trial behind the state
    queued: FrozenTrial | None = None  # lowest-numbered WAITING trial
    trials: list[FrozenTrial] = field(default_factory=list)


PRECEDENCE = (  # the first kind of trial a point has decides its state
    ("done", lambda t: t.state == TrialState.COMPLETE),
    (
        "diverged",
        lambda t: t.state == TrialState.FAIL and t.user_attrs.get(STATUS_ATTR) == "diverged",
    ),
    ("running", lambda t: t.state == TrialState.RUNNING),
    ("pending", lambda t: t.state == TrialState.WAITING),
    ("failed", lambda t: t.state.is_finished()),
)


def point_state(point: GridPoint, point_trials: list[FrozenTrial]) -> PointState:
    """The state of one point from its trials (in trial-number order)."""
    waiting = [t for t in point_trials if t.state == TrialState.WAITING]
    for state, test in PRECEDENCE:
        found = [t for t in point_trials if test(t)]
        if found:
            return PointState(
                point, state, found[-1], waiting[0] if waiting else None, point_trials
            )
    return PointState(point, "pending", None, None, point_trials)


def classify(points: list[GridPoint], trials: list[FrozenTrial]) -> dict[str, PointState]:
    """The state of every grid point from the trials that ran its current config (trials
    of a point whose settings changed are ignored)."""
    by_point: dict[tuple, list[FrozenTrial]] = defaultdict(list)
    for t in trials:
        by_point[t.user_attrs.get(GRID_KEY_ATTR), t.user_attrs.get(CONFIG_HASH_ATTR)].append(t)
    return {p.key: point_state(p, by_point[p.key, p.config_hash]) for p in points}


def outcome_of(trial: FrozenTrial) -> str | None:
    """The status a finished trial ended with (None while it is waiting or running); a
    trial failed by the heartbeat check carries no status, or "ok" if its worker was killed
    between recording the result and completing the trial: it counts as killed."""
    if not trial.state.is_finished():
        return None
    if trial.state == TrialState.COMPLETE:
        return "ok"
    status = trial.user_attrs.get(STATUS_ATTR)
    return status if status in ("diverged", "failed", "killed") else "killed"


@contextmanager
def queue_lock(storage: optuna.storages.RDBStorage, study: str) -> Iterator[None]:
    """Serialise queue updates of `study` across processes (a queue update reads, then
    writes; reads take no row locks): a file lock beside a SQLite database, an advisory
    lock on PostgreSQL; other databases are not serialised."""
    if storage.url.startswith("sqlite:///"):
        with sqlite_path(storage.url).with_suffix(".lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    elif storage.engine.dialect.name == "postgresql":
        key = {"key": zlib.crc32(study.encode())}
        with storage.engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), key)
    else:
        yield


class Heartbeat:
    """Records the trial's heartbeat every `interval` seconds while the block runs."""

    def __init__(self, storage, trial_id: int, interval: int):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            self.storage.record_heartbeat(self.trial_id)

    def __enter__(self) -> Heartbeat:
        self.storage.record_heartbeat(self.trial_id)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


class Queue:
    """The study's grid points as Optuna trials: enqueue, claim, finish, requeue."""

    def __init__(self, spec: StudySpec, stores: Stores):
        self.spec, self.stores = spec, stores
        self.points = {p.key: p for p in spec.points()}
        self.storage = open_storage(
            stores.storage_url,
            heartbeat_interval=stores.heartbeat_s,
            grace_period=stores.grace_s,
            heartbeat_stale_trial_callback=self._requeue_killed,
        )
        self.study = optuna.create_study(
            study_name=spec.name,
            storage=self.storage,
            direction="maximize",
            load_if_exists=True,
        )
        self.study_id = self.storage.get_study_id_from_name(spec.name)

    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def states(self) -> dict[str, PointState]:
        return classify(list(self.points.values()), self.trials())

    def check_grid(self, allow_change: bool) -> None:
        """Refuse to continue a study whose grid changed, unless allowed."""
        attrs = self.study.user_attrs
        now = fingerprint(list(self.points.values()))
        before = attrs.get("grid_fingerprint")
        if before not in (None, now) and not allow_change:
            old = {t.user_attrs.get(GRID_KEY_ATTR) for t in self.trials()}
            added, removed = len(set(self.points) - old), len(old - set(self.points))
            raise ConfigError(
                f"{self.spec.path}: the grid of study {self.spec.name!r} changed since it was "
                f"started in {redact(self.stores.storage_url)} ({added} points not tried yet, "
                f"{removed} tried points gone, or settings changed). Use a new study name, or pass "
                "--allow-grid-change to keep the results whose settings did not change and run "
                "the rest."
            )
        self.study.set_user_attr("grid_fingerprint", now)
        self.study.set_user_attr("grid_size", len(self.points))
        self.study.set_user_attr("study_file", self.spec.path)

    def enqueue(self, points: list[GridPoint]) -> None:
        """A WAITING trial for each point: its axis values as Optuna params, each over its
        axis's distribution (`widen_axes`), and in user attrs its key, config hash and values
        (PARAMS_ATTR), which resume and dedup read. Callers hold `lock()`."""
        axes = self.widen_axes()
        for point in points:
            trial = optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=point.params,
                distributions={axis: axes[axis] for axis in point.params},
                user_attrs=point_attrs(point),
            )
            self.study.add_trial(trial)

    def widen_axes(self) -> dict[str, CategoricalDistribution]:
        """One categorical distribution per axis, shared by every trial of the study, so that
        optuna-dashboard and `optuna.importance` see one search space.

        Optuna refuses a param whose categorical choices differ from those already stored
        for it in the study, and an axis may gain a value (`--allow-grid-change`). So the
        choices are the stored ones, in their stored order, followed by the grid's values
        not among them (sorted); when they grow, the distribution stored on every trial of
        the axis is rewritten to the wider one. Stored params are indices into the choices,
        and old choices keep their positions, so the trials' values do not change. The
        choices are thus the union of the values the study has ever held."""
        stored = stored_distributions(self.trials())
        axes = {}
        for axis, values in grid_values(list(self.points.values())).items():
            old = stored[axis].choices if axis in stored else ()
            axes[axis] = CategoricalDistribution([*old, *sorted(set(values) - set(old))])
            if axis in stored and axes[axis] != stored[axis]:
                self._rewrite_distribution(axis, axes[axis])
        return axes

    def _rewrite_distribution(self, axis: str, wider: CategoricalDistribution) -> None:
        """Store `wider` as the distribution of `axis` on every trial of the study (Optuna
        has no call for it: one UPDATE of its `trial_params` table)."""
        update = sqlalchemy.text(
            "UPDATE trial_params SET distribution_json = :wider WHERE param_name = :axis "
            "AND trial_id IN (SELECT trial_id FROM trials WHERE study_id = :study)"
        )
        wider_json = distribution_to_json(wider)
        with self.storage.engine.begin() as conn:
            conn.execute(update, {"wider": wider_json, "axis": axis, "study": self.study_id})

    def fill(self) -> int:
        """Queue every point without a result or a live trial; returns how many."""
        todo = [
            s.point
            for s in self.states().values()
            if s.state == "failed" or (s.state == "pending" and s.queued is None)
        ]
        self.enqueue(todo)
        return len(todo)

    def _requeue_killed(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Heartbeat callback: the worker of `trial` died; run its point again (up to
        MAX_AUTO_RETRIES kills per point, after which the next `study run` retries)."""
        point = self.points.get(trial.user_attrs.get(GRID_KEY_ATTR))
        state = self.states().get(point.key) if point else None
        retry = state and state.state == "failed" and state.queued is None
        if retry and len(state.trials) < MAX_AUTO_RETRIES:
            self.enqueue([point])

    def fail_stale(self) -> None:
        """Fail RUNNING trials whose heartbeat stopped (their points are requeued)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def claim(self) -> tuple[FrozenTrial | None, bool]:
        """Fail stale trials, then move the first claimable WAITING trial to RUNNING.
        Returns (the trial or None, whether any point is still queued or running)."""
        with self.lock():
            self.fail_stale()
            states = self.states().values()
            queued = [s.queued for s in states if s.state == "pending" and s.queued]
            for t in sorted(queued, key=lambda t: t.number):
                trial_id = self.trial_id(t.number)
                self.storage.record_heartbeat(trial_id)
                try:
                    if self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                        return t, True
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue
        return None, any(s.state == "running" or s.queued for s in states)

    def lock(self):
        return queue_lock(self.storage, self.spec.name)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def finish(self, trial_id: int, status: str, reason: str | None, summary: dict) -> None:
        for key, value in summary.items():
            self.storage.set_trial_user_attr(trial_id, key, value)
        if reason:
            self.storage.set_trial_user_attr(trial_id, REASON_ATTR, reason)
        self.storage.set_trial_user_attr(trial_id, STATUS_ATTR, status)
        if status == "ok":
            values = [summary[BEST_VAL_SEQ_ACC]]  # what selected the checkpoint, never OOD
            self.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, values)
        else:
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)

    def orphan_outcome(self):
        """For Tracker.resolve_orphans: trial number → how its trial ended. The trials are
        read when first asked, after the runs were listed, so that a run whose trial began
        in between is seen as running."""
        trials = functools.cache(lambda: {t.number: t for t in self.trials()})
        return lambda n: outcome_of(trials()[n]) if n in trials() else "killed"


def fingerprint(points: list[GridPoint]) -> str:
    """Changes whenever a grid point is added, removed, gets a different config or is
    declared unsolvable (or solvable again)."""
    items = sorted([p.key, p.config_hash] + ([] if p.solvable else ["unsolvable"]) for p in points)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:12]


def point_attrs(point: GridPoint) -> dict[str, object]:
    """The user attrs that tie a trial to its grid point."""
    attrs = {
        GRID_KEY_ATTR: point.key,
        CONFIG_HASH_ATTR: point.config_hash,
        SOLVABLE_ATTR: point.solvable,
    }
    attrs |= {PARAMS_ATTR: point.params} | (
        {BLOCK_ATTR: ",".join(point.blocks)} if point.blocks else {}
    )
    return attrs


def read_trials(name: str, stores: Stores) -> list[FrozenTrial]:
    """The trials of study `name`, or none if it was never started (without creating
    stores)."""
    url = stores.storage_url
    if url.startswith("sqlite:///") and not sqlite_path(url).exists():
        return []
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        return []
    return study.get_trials(deepcopy=False)


def axis_values(trial: FrozenTrial) -> dict[str, object]:
    """The axis values of a trial's grid point: its params, or its PARAMS_ATTR user attr for a
    trial queued before the axes were params."""
    return trial.params or trial.user_attrs.get(PARAMS_ATTR, {})


def grid_values(points: list[GridPoint]) -> dict[str, list]:
    """Each axis's values over `points` (a point of a block without the axis has none)."""
    values: dict[str, list] = defaultdict(list)
    for point in points:
        for axis, value in point.params.items():
            values[axis].append(value)
    return dict(values)


def stored_distributions(trials: list[FrozenTrial]) -> dict[str, CategoricalDistribution]:
    """The distribution stored for each axis, from the first trial that has it."""
    found: dict[str, CategoricalDistribution] = {}
    for trial in trials:
        found = trial.distributions | found
    return found


def describe_error(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" at {Path(frame[0].filename).name}:{frame[0].lineno}" if frame else ""
    return redact(f"{type(err).__name__}: {err}{where}")  # a trial's `reason`: a tag
