"""The shapes and iteration counts a benchmark run uses: the quick study preset's model
(read from study/quick.yaml when it exists), one larger model, and tiny `--quick` ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attnstudy.config import Config
from attnstudy.registries import make_config

QUICK_STUDY = Path("study/quick.yaml")
DEFAULT = dict(d_model=64, n_layers=2, heads=4, batch_size=64, train_max_len=16)
LARGER = dict(d_model=128, n_layers=2, heads=4, batch_size=32, train_max_len=32)
TINY = dict(d_model=16, n_layers=1, heads=2, batch_size=8, train_max_len=4)


@dataclass(frozen=True)
class Shape:
    """One model shape: a decoder on copy, all examples of length train_max_len."""

    name: str
    d_model: int
    n_layers: int
    heads: int
    batch_size: int
    train_max_len: int

    @property
    def seq_len(self) -> int:
        """Tokens the decoder reads per example: input SEP target (EOS is only a label)."""
        return 2 * self.train_max_len + 1

    def config(self, **overrides) -> Config:
        fields = dict(
            d_model=self.d_model,
            n_layers=self.n_layers,
            heads=self.heads,
            batch_size=self.batch_size,
            train_max_len=self.train_max_len,
            task="copy",
            arch="decoder",
            device="cpu",
        )
        return make_config(**(fields | overrides))

    def label(self) -> str:
        return f"d{self.d_model} L{self.n_layers} H{self.heads} B{self.batch_size} T{self.seq_len}"


@dataclass(frozen=True)
class Plan:
    """Shapes and repetitions of one benchmark run."""

    quick: bool
    shapes: tuple[Shape, ...]  # the first is the study's shape
    warmup: int
    repeats: tuple[int, ...]  # timed rounds per shape
    trial_steps: int  # steps of a trial when there is no study/quick.yaml
    throughput_trials: int  # trials of the throughput study (per worker count)
    trial_rounds: int  # section 8: trials of each loop, run A B B A …

    @property
    def study_shape(self) -> Shape:
        return self.shapes[0]


def quick_preset_shape() -> Shape:
    """The quick study's model, from study/quick.yaml when the file exists (a setting that
    is an axis, such as heads, takes its largest value), else DEFAULT. Always on copy at
    4 × train_max_len evaluation: the shapes, not the task, set the cost."""
    values = dict(DEFAULT)
    if QUICK_STUDY.exists():
        from attnstudy.study_config import load_study

        spec = load_study(QUICK_STUDY)
        for key in values:
            if key in spec.fixed:
                values[key] = spec.fixed[key]
            elif key in spec.axes:
                values[key] = max(spec.axes[key])
    return Shape("study", **values)


def make_plan(quick: bool) -> Plan:
    if quick:
        return Plan(True, (Shape("tiny", **TINY),), 1, (2,), 10, 2, 1)
    shapes = (quick_preset_shape(), Shape("larger", **LARGER))
    return Plan(False, shapes, 3, (30, 10), 1000, 4, 2)


def trial_config(plan: Plan) -> Config:
    """A typical trial: the quick study's first grid point when study/quick.yaml exists
    (and not --quick), else the study shape trained for plan.trial_steps."""
    if QUICK_STUDY.exists() and not plan.quick:
        from attnstudy.study_config import load_study

        return load_study(QUICK_STUDY).points()[0].config
    steps = plan.trial_steps
    return plan.study_shape.config(steps=steps, val_every=max(1, steps // 8))
