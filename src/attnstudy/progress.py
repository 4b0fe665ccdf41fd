"""What a study shows of its progress: the live display while `study run` works (one bar,
one line per finished trial) and `study status` (the state of every grid point), both
read from the Optuna storage, so they see every worker.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

import optuna
from optuna.trial import FrozenTrial

from attnstudy.study_config import StudySpec
from attnstudy.tracking import silence
from attnstudy.work_queue import (
    GRID_KEY,
    REASON,
    RESULTS,
    PointState,
    Queue,
    Stores,
    classify,
    open_storage,
    outcome_of,
    sqlite_path,
)


class Monitor:
    """One progress bar (points finished / total, ETA) and one line per finished trial,
    read from the Optuna storage so it sees every worker."""

    def __init__(self, queue: Queue, out: TextIO):
        from tqdm import tqdm

        self.queue, self.out = queue, out
        self.seen = {t.number for t in queue.trials() if t.state.is_finished()}
        done = sum(s.state in RESULTS for s in queue.states().values())
        self.bar = tqdm(
            total=len(queue.points),
            initial=done,
            desc=queue.spec.name,
            unit="trial",
            smoothing=0,
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        )
        self.done = done
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(self.queue.stores.poll_s):
            self.poll()

    def poll(self) -> None:
        from tqdm import tqdm

        for t in self.queue.trials():
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                if t.user_attrs.get(GRID_KEY) in self.queue.points:
                    tqdm.write(trial_line(t), file=self.out)
        done = sum(s.state in RESULTS for s in self.queue.states().values())
        self.bar.update(done - self.done)
        self.done = done

    def __enter__(self) -> Monitor:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.poll()
        self.bar.close()


def trial_line(t: FrozenTrial) -> str:
    a = t.user_attrs
    status = outcome_of(t) or t.state.name.lower()
    if status == "ok":
        nan = float("nan")
        detail = (
            f"id {a.get('id_seq_acc', nan):.2f}  ood {a.get('ood_seq_acc', nan):.2f}  "
            f"ext {a.get('extrapolation_len', 0):.0f}  {a.get('train_seconds', 0):.0f}s"
        )
    else:
        detail = a.get(REASON, "worker died")
    return f"  #{t.number:<4} {status:<8} {a.get(GRID_KEY)}  {detail}"


def counts(states: dict[str, PointState]) -> dict[str, int]:
    found = {s: 0 for s in ("done", "diverged", "running", "failed", "pending")}
    for s in states.values():
        found[s.state] += 1
    return found


def study_status(spec: StudySpec, stores: Stores, out: TextIO | None = None) -> int:
    """Print the state of every grid point (done / diverged / running / failed / pending)."""
    out = out or sys.stdout
    silence()
    points = spec.points()
    trials = _read_trials(spec, stores)
    states = classify(points, trials)
    width = max(len(p.key) for p in points)
    print(f"{'state':<9} {'grid point':<{width}}  trial  id_seq  ood_seq  ext  note", file=out)
    for p in sorted(points, key=lambda p: p.key):
        print(_status_row(states[p.key], width), file=out)
    if spec.named_blocks:
        for block in spec.blocks:
            mine = {k: s for k, s in states.items() if block.name in s.point.blocks}
            found = ", ".join(f"{n} {s}" for s, n in counts(mine).items())
            print(f"block {block.name}: {len(mine)} grid points: {found}", file=out)
    found = ", ".join(f"{n} {s}" for s, n in counts(states).items())
    print(f"study {spec.name}: {len(points)} grid points: {found}", file=out)
    return 0


def _status_row(s: PointState, width: int) -> str:
    t = s.trial
    number = f"#{t.number}" if t else "-"
    a = t.user_attrs if t else {}

    def num(key, fmt):
        return format(a[key], fmt) if key in a else "-"

    note = a.get(REASON, "") if s.state in ("failed", "diverged") else ""
    if s.state == "failed" and not note:
        note = "worker died"
    if not s.point.solvable:
        note = f"unsolvable by construction {note}"
    return (
        f"{s.state:<9} {s.point.key:<{width}}  {number:>5}  {num('id_seq_acc', '.3f'):>6}"
        f"  {num('ood_seq_acc', '.3f'):>7}  {num('extrapolation_len', '.0f'):>3}  {note}"
    ).rstrip()


def _read_trials(spec: StudySpec, stores: Stores) -> list[FrozenTrial]:
    """The study's trials, or none if it was never started (without creating stores)."""
    url = stores.storage_url
    if url.startswith("sqlite:///") and not sqlite_path(url).exists():
        return []
    storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        return []
    return study.get_trials(deepcopy=False)
