"""The study: every grid point of a `study/*.yaml` trained once, tracked in Optuna and MLflow.

The grid comes from Optuna's `GridSampler` (see `study_config`); `work_queue` runs each
point exactly once whatever the number of workers. This module holds the workers (one
process each, interruptible) and their supervisor; progress.py shows their progress.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import optuna
from optuna.trial import FrozenTrial

from attnstudy import schema
from attnstudy.config import Config
from attnstudy.logged_model import log_best_models
from attnstudy.progress import Monitor, counts
from attnstudy.provenance import host_tags, provenance_tags, usable_cores
from attnstudy.redact import redact
from attnstudy.stores import Stores, check_stores, make_folder
from attnstudy.study_config import GridPoint, StudySpec
from attnstudy.tracking import Tracker, TrialRun, silence
from attnstudy.work_queue import (
    GRID_KEY_ATTR,
    RUN_ID_ATTR,
    STATES_WITH_RESULT,
    WORKER_ATTR,
    Heartbeat,
    Queue,
    describe_error,
)

MAX_RESTARTS = 10  # worker processes replaced after dying abnormally
STOP_GRACE_S = 15  # after Ctrl-C, seconds a worker has to record its trial before SIGKILL


@dataclass
class Worker:
    """Everything one process needs to run trials."""

    queue: Queue
    tracker: Tracker
    parent_id: str
    tags: dict[str, str]

    def run_trial(self, trial: FrozenTrial) -> str:
        from attnstudy.train import Diverged, run

        point = self.queue.points[trial.user_attrs[GRID_KEY_ATTR]]
        trial_id = self.queue.trial_id(trial.number)
        status, reason, summary, mlrun = "killed", "interrupted", {}, None
        with Heartbeat(self.queue.storage, trial_id, self.queue.stores.heartbeat_s):
            try:
                mlrun = self._start_run(point, trial.number)
                where = f"{socket.gethostname()}:{os.getpid()}"
                self.queue.storage.set_trial_user_attr(trial_id, WORKER_ATTR, where)
                self.queue.storage.set_trial_user_attr(trial_id, RUN_ID_ATTR, mlrun.run_id)
                pause_for_test(trial.number, "running")
                start = time.perf_counter()
                result = run(point.config, self._checked(mlrun.on_step))
                summary = mlrun.log_result(result, time.perf_counter() - start)
                pause_for_test(trial.number, "logged")
                status, reason = "ok", None
            except Diverged as err:
                status, reason = "diverged", str(err)
            except Exception as err:
                status, reason = "failed", describe_error(err)
            finally:
                status, reason = self._finish(trial_id, status, reason, summary)
                if mlrun is not None:
                    mlrun.end(status, reason)
        return status

    @staticmethod
    def _checked(on_step):
        """The training callback, with a `stop_point` every step."""

        def callback(step: int, record: dict[str, float]) -> None:
            stop_point()
            on_step(step, record)

        return callback

    def _finish(self, trial_id: int, status: str, reason: str | None, summary: dict):
        try:
            self.queue.finish(trial_id, status, reason, summary)
        except optuna.exceptions.UpdateFinishedTrialError:  # heartbeat missed for too long
            return "killed", "declared dead by the heartbeat check (its point runs again)"
        return status, reason

    def _start_run(self, point: GridPoint, number: int) -> TrialRun:
        tags = self.tags | {
            schema.TRIAL: str(number),
            schema.GRID_KEY: point.key,
            schema.CONFIG_HASH: point.config_hash,
            schema.SOLVABLE: str(point.solvable).lower(),
        }
        if point.blocks:
            tags[schema.BLOCK] = ",".join(point.blocks)
        return self.tracker.start_trial(self.parent_id, point.config, tags)

    def work(self) -> None:
        """Claim and run trials until no point is queued or running."""
        while True:
            stop_point()
            trial, live = self.queue.claim()
            if trial is not None:
                self.run_trial(trial)
            elif live:
                time.sleep(self.queue.stores.poll_s)
            else:
                return


HOLD = "ATTNSTUDY_TEST_HOLD"


def pause_for_test(number: int, stage: str) -> None:
    """Test-only (the chaos and Ctrl-C tests), inert unless $ATTNSTUDY_TEST_HOLD names a
    folder: say that trial `number` reached `stage` by writing `<folder>/<number>.<stage>`
    (this worker's pid), then wait until the test writes `<number>.<stage>.go`. The stages:
    "running" (the trial is RUNNING with its MLflow run) and "logged" (its result is logged
    but not yet recorded in Optuna), so a test knows a worker is inside a trial."""
    folder = os.environ.get(HOLD)
    if not folder:
        return
    mark = Path(folder, f"{number}.{stage}")
    partial = mark.with_name(f"{mark.name}.partial")
    partial.write_text(str(os.getpid()))
    partial.rename(mark)  # the test never reads a half-written pid
    while not Path(folder, f"{number}.{stage}.go").exists():
        stop_point()
        time.sleep(0.05)


@dataclass(frozen=True)
class Launch:
    """What every worker of one launch shares: the study, its stores, the parent run, the
    tags of each trial run, and the torch threads of each worker."""

    spec: StudySpec
    stores: Stores
    parent_id: str
    tags: dict[str, str]
    threads: int


def _open_worker(launch: Launch) -> Worker:
    spec, stores = launch.spec, launch.stores
    tracker = Tracker(stores.tracking_uri, spec.name, stores.runs_dir / "mlartifacts")
    return Worker(Queue(spec, stores), tracker, launch.parent_id, launch.tags)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stop_requested = threading.Event()


def _interrupt(signum, frame):
    """Ctrl-C or SIGTERM: raise KeyboardInterrupt on the first, ignore the rest, so that the
    interrupted trial is still recorded (as killed). Python drops an exception raised while
    it runs a finalizer (a `__del__` or weakref callback, e.g. in SQLAlchemy), so the request
    is kept and raised again at the next `stop_point`."""
    if not _stop_requested.is_set():
        _stop_requested.set()
        raise KeyboardInterrupt


def stop_point() -> None:
    """Raise a stop request that a finalizer swallowed (called every training step, before
    each claim and while the launcher waits for its workers)."""
    if _stop_requested.is_set():
        raise KeyboardInterrupt


def _drop_swallowed_interrupt(unraisable) -> None:
    """sys.unraisablehook: say nothing of a KeyboardInterrupt lost in a finalizer (the next
    `stop_point` raises it again); report anything else as Python does."""
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def _catch_stop_signals() -> dict:
    """Install the stop handlers; returns the previous ones."""
    _stop_requested.clear()
    sys.unraisablehook = _drop_swallowed_interrupt
    return {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS}


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM act like one Ctrl-C while the block runs."""
    previous_hook, previous = sys.unraisablehook, _catch_stop_signals()
    try:
        yield
    finally:
        _stop_requested.clear()
        sys.unraisablehook = previous_hook
        for s, handler in previous.items():
            signal.signal(s, handler)


def _worker_process(launch: Launch) -> None:
    """Entry point of a spawned worker: SIGTERM acts like Ctrl-C (trial marked killed)."""
    import torch

    _catch_stop_signals()
    silence()
    torch.set_num_threads(launch.threads)
    try:
        _open_worker(launch).work()
    except KeyboardInterrupt:
        sys.exit(130)
    finally:  # every trial is recorded: spare the exit's garbage collection of the whole
        gc.freeze()  # heap (seconds on a busy machine; the launcher waits for it)


def _supervise(spawn, workers: int) -> None:
    """Run `workers` processes; replace one that dies abnormally (SIGKILL, crash) while
    others may still need help, up to MAX_RESTARTS times."""
    procs = [spawn() for _ in range(workers)]
    restarts = 0
    while procs:
        multiprocessing.connection.wait([p.sentinel for p in procs], timeout=1.0)
        stop_point()
        for p in [p for p in procs if not p.is_alive()]:
            procs.remove(p)
            if p.exitcode not in (0, 130) and restarts < MAX_RESTARTS:
                procs.append(spawn())
                restarts += 1


def _stop_children() -> None:
    """After Ctrl-C or SIGTERM: ask every worker to record its trial as killed and stop
    (SIGTERM, which a worker already interrupted ignores), then kill those still running."""
    children = multiprocessing.active_children()
    for p in children:
        p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in children:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in children:
        if p.is_alive():
            p.kill()
            p.join()


def run_study(
    spec: StudySpec,
    stores: Stores,
    workers: int = 1,
    allow_grid_change: bool = False,
    threads: int | None = None,
    out: TextIO | None = None,
) -> int:
    """Run every unfinished grid point; 0 when all have a result, 1 if some failed, 130 on
    Ctrl-C. The parent run gets the launcher's system metrics while the workers run and,
    once they return, each encoding's best model (logged_model.py)."""
    out = out or sys.stdout
    silence()
    check_stores(stores, spec.name)
    make_folder(stores.storage_url)
    queue = Queue(spec, stores)
    queue.check_grid(allow_grid_change)
    tags = provenance_tags()
    threads = threads or default_threads(workers)
    tracker, parent_id = _open_parent(queue, tags | host_tags(threads))
    to_run = sum(s.state not in STATES_WITH_RESULT for s in queue.states().values())
    tracker.resolve_orphans(queue.orphan_outcome())
    print(
        f"study {spec.name}: {len(queue.points)} grid points{_blocks_note(spec)}, {to_run} to "
        f"run ({workers} worker{'s' * (workers > 1)} x {threads} thread{'s' * (threads > 1)})",
        file=out,
    )
    status = "FAILED"  # unless the workers return, or Ctrl-C / SIGTERM stops them
    with interruptible():
        try:
            with tracker.system_metrics(parent_id), Monitor(queue, out):
                _run_workers(Launch(spec, stores, parent_id, tags, threads), workers)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            _stop_children()
        finally:
            tracker.resolve_orphans(queue.orphan_outcome())
            best = _log_summary(tracker, parent_id, queue)
            tracker.close(parent_id, status)
    if status != "FINISHED":
        return 130
    with queue.lock():  # launchers sharing the parent run: the later one sees the models
        log_best_models(tracker, parent_id, _selected_trials(best))
    return _report(queue, out)


def _open_parent(queue: Queue, tags: dict[str, str]) -> tuple[Tracker, str]:
    """The study's MLflow experiment and parent run (tagged with the grid, the stores, the
    code and the machine), and every point without a result queued."""
    spec, stores = queue.spec, queue.stores
    parent_tags = {
        schema.GRID_SIZE: str(len(queue.points)),
        schema.GRID_FINGERPRINT: queue.study.user_attrs["grid_fingerprint"],
        schema.OPTUNA_STORAGE: redact(stores.storage_url),
        **tags,
    }
    if spec.named_blocks:
        parent_tags[schema.BLOCKS] = ",".join(b.name for b in spec.blocks)
    with queue.lock():  # one experiment and one parent run, however many launchers start
        make_folder(stores.tracking_uri)
        tracker = Tracker(stores.tracking_uri, spec.name, stores.runs_dir / "mlartifacts")
        parent_id = tracker.open_parent(spec.fixed, parent_tags, spec.description)
        tracker.log_grid(parent_id, list(queue.points))
        queue.fail_stale()
        queue.fill()
    return tracker, parent_id


def _blocks_note(spec: StudySpec) -> str:
    """ " in 3 blocks, 2 duplicates merged" for a file with blocks."""
    if not spec.named_blocks:
        return ""
    blocks, merged = len(spec.blocks), spec.grid.merged
    plural = "s" * (blocks != 1), "s" * (merged != 1)
    return f" in {blocks} block{plural[0]}, {merged} duplicate{plural[1]} merged"


def _log_summary(tracker: Tracker, parent_id: str, queue: Queue) -> dict[str, dict]:
    """Points per state and the best variants (returned), on the study's parent run."""
    states = queue.states()
    done = [(s.point.config, s.trial.user_attrs) for s in states.values() if s.state == "done"]
    return tracker.log_summary(parent_id, queue.spec.description, counts(states), done)


def _selected_trials(best: dict[str, dict]) -> dict[str, tuple[Config, str]]:
    """Each encoding's trial whose model stands for its best variant: config, MLflow run."""
    return {e: (row["selected"][0], row["selected"][1][RUN_ID_ATTR]) for e, row in best.items()}


def default_threads(workers: int) -> int:
    """Torch threads per worker: this machine's cores shared among the workers."""
    return max(1, usable_cores() // workers)


def _run_workers(launch: Launch, workers: int) -> None:
    if workers == 1:
        import torch

        torch.set_num_threads(launch.threads)
        _open_worker(launch).work()
        return
    context = multiprocessing.get_context("spawn")

    def spawn():
        p = context.Process(target=_worker_process, args=(launch,), daemon=False)
        p.start()
        return p

    _supervise(spawn, workers)


def _report(queue: Queue, out: TextIO) -> int:
    found = counts(queue.states())
    summary = ", ".join(f"{n} {s}" for s, n in found.items() if n)
    print(f"study {queue.spec.name}: {summary}", file=out)
    if found["failed"] or found["pending"]:
        print("  run the same command again to retry the failed points", file=out)
        return 1
    return 0
