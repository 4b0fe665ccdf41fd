"""What a study shows of its progress: the live display while `study run` works (one bar,
one line per finished trial) and `study status` (the state of every grid point), both
read from the Optuna storage, so they see every worker; and the progress bar every command
draws (`progress_bar`): tqdm's on a terminal, a line every tenth of the way to a file or
a pipe.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from optuna.trial import FrozenTrial

from attnstudy.schema import EXTRAPOLATION_LEN, ID_SEQ_ACC, OOD_SEQ_ACC, TRAIN_SECONDS
from attnstudy.stores import Stores
from attnstudy.study_config import StudySpec
from attnstudy.tracking import silence
from attnstudy.work_queue import (
    GRID_KEY_ATTR,
    REASON_ATTR,
    STATES_WITH_RESULT,
    PointState,
    Queue,
    classify,
    outcome_of,
    read_trials,
)


class Milestones:
    """A progress bar for a file or a pipe: one line each time another tenth of `total` is
    done (and at the end), where tqdm would redraw one line thousands of times."""

    def __init__(self, total: int, desc: str, file: TextIO, unit: str, initial: int = 0):
        self.total, self.desc, self.file, self.unit = total, desc, file, unit
        self.n, self.postfix, self.start = initial, "", time.monotonic()
        self.tenths = self._tenths()

    def _tenths(self) -> int:
        return 10 * self.n // self.total if self.total else 10

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._tenths() > self.tenths:
            self.tenths = self._tenths()
            self._line()

    def set_postfix(self, **values) -> None:
        """What the next line ends with (`key=value` pairs), as tqdm's postfix."""
        self.postfix = "  " + " ".join(f"{k}={v}" for k, v in values.items())

    def _line(self) -> None:
        elapsed = time.monotonic() - self.start
        done = f"{self.n}/{self.total} {self.unit}"
        percent = 100 * self.n // self.total if self.total else 100
        line = f"{self.desc}: {percent:3d}% {done}  {elapsed:.0f} s{self.postfix}"
        print(line, file=self.file, flush=True)

    def close(self) -> None:
        """Nothing to erase: every line written stays."""


def progress_bar(
    total: int,
    desc: str,
    file: TextIO,
    unit: str = "it",
    initial: int = 0,
    disable: bool = False,
    **terminal,
):
    """tqdm's bar (with the `terminal` options) when `file` is a terminal, else
    `Milestones` (a line every 10%); both take update(n), set_postfix(**values), close()."""
    if disable or file.isatty():
        from tqdm import tqdm

        options = dict(desc=desc, file=file, unit=unit, initial=initial, disable=disable)
        return tqdm(total=total, **options, **terminal)
    return Milestones(total, desc, file, unit, initial)


class Monitor:
    """One progress bar (points finished / total, ETA) and one line per finished trial,
    read from the Optuna storage so it sees every worker."""

    def __init__(self, queue: Queue, out: TextIO):
        self.queue, self.out = queue, out
        self.seen = {t.number for t in queue.trials() if t.state.is_finished()}
        done = sum(s.state in STATES_WITH_RESULT for s in queue.states().values())
        self.bar = progress_bar(
            len(queue.points), queue.spec.name, sys.stderr, "trial", done, smoothing=0
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
                if t.user_attrs.get(GRID_KEY_ATTR) in self.queue.points:
                    tqdm.write(trial_line(t), file=self.out)
        done = sum(s.state in STATES_WITH_RESULT for s in self.queue.states().values())
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
            f"id {a.get(ID_SEQ_ACC, nan):.2f}  ood {a.get(OOD_SEQ_ACC, nan):.2f}  "
            f"ext {a.get(EXTRAPOLATION_LEN, 0):.0f}  {a.get(TRAIN_SECONDS, 0):.0f}s"
        )
    else:
        detail = a.get(REASON_ATTR, "worker died")
    return f"  #{t.number:<4} {status:<8} {a.get(GRID_KEY_ATTR)}  {detail}"


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
    trials = read_trials(spec.name, stores)
    states = classify(points, trials)
    width = max(len(p.key) for p in points)
    print(f"{'state':<9} {'grid point':<{width}}  trial  id_seq  ood_seq  ext  note", file=out)
    for p in sorted(points, key=lambda p: p.key):
        print(_status_row(states[p.key], width), file=out)
    if spec.named_blocks:
        for block in spec.blocks:
            in_block = {k: s for k, s in states.items() if block.name in s.point.blocks}
            found = ", ".join(f"{n} {s}" for s, n in counts(in_block).items())
            print(f"block {block.name}: {len(in_block)} grid points: {found}", file=out)
    found = ", ".join(f"{n} {s}" for s, n in counts(states).items())
    print(f"study {spec.name}: {len(points)} grid points: {found}", file=out)
    return 0


def _status_row(s: PointState, width: int) -> str:
    t = s.trial
    number = f"#{t.number}" if t else "-"
    a = t.user_attrs if t else {}

    def num(key, fmt):
        return format(a[key], fmt) if key in a else "-"

    note = a.get(REASON_ATTR, "") if s.state in ("failed", "diverged") else ""
    if s.state == "failed" and not note:
        note = "worker died"
    if not s.point.solvable:
        note = f"unsolvable by construction {note}"
    return (
        f"{s.state:<9} {s.point.key:<{width}}  {number:>5}  {num(ID_SEQ_ACC, '.3f'):>6}"
        f"  {num(OOD_SEQ_ACC, '.3f'):>7}  {num(EXTRAPOLATION_LEN, '.0f'):>3}  {note}"
    ).rstrip()
