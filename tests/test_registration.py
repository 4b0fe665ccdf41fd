"""A new variant is one class (issue 31): a score, a positional encoding and a task,
each registered at run time and edited nowhere else, train, run through a tiny study of
the study's own launcher (Optuna and MLflow, in-process) and appear in its report."""

import math
from pathlib import Path

import pytest
import torch
from builders import TINY_TRAINING, stores_in, study_file

from attnstudy.analysis.report import build_report
from attnstudy.positions import POSITIONS, SinusoidalPositions
from attnstudy.registries import make_config
from attnstudy.scores import SCORES, ScaledDotScore
from attnstudy.study import run_study
from attnstudy.study_config import load_study
from attnstudy.tasks import TASKS, Task, _random_symbols
from attnstudy.train import run


class HalvedDot(ScaledDotScore):
    """q·k / (2√d_head): scaled dot product attention at half the temperature."""

    name = "halved_dot"

    def project(self, q, k):
        return q, k, 0.5 / math.sqrt(self.d_head)


class WideSinusoidal(SinusoidalPositions):
    """Sinusoidal positions with a position scale of 2 (a made-up absolute code)."""

    name = "wide_sinusoidal"

    def embed(self, x, pos):
        return super().embed(x, 2 * pos)


class Rotate(Task):
    """w → w rotated left by one symbol."""

    name = "rotate"

    def generate(self, n, gen):
        x = _random_symbols(n, self.num_symbols, gen)
        j = torch.arange(x.shape[1])[None, :]
        index = (j + 1) % n[:, None]
        return x, torch.gather(x, 1, index).masked_fill(j >= n[:, None], 0)


PRESETS = Path(__file__).parent.parent / "study"
NEW = {"score": HalvedDot, "position": WideSinusoidal, "task": Rotate}
REGISTRIES = {"score": SCORES, "position": POSITIONS, "task": TASKS}


@pytest.fixture
def registered(monkeypatch):
    for axis, cls in NEW.items():
        monkeypatch.setitem(REGISTRIES[axis], cls.name, cls)


@pytest.mark.parametrize("axis", NEW)
def test_a_variant_registered_at_run_time_trains(registered, axis):
    result = run(make_config(**(TINY_TRAINING | {axis: NEW[axis].name})))
    assert result.summary["id_token_acc"] > 0 and len(result.per_length) == 8


def test_variants_registered_at_run_time_run_through_a_study_and_its_report(registered, tmp_path):
    fixed = {k: v for k, v in TINY_TRAINING.items() if k != "heads"}
    spec = study_file(
        tmp_path,
        {
            "name": "registered",
            "tasks": ["copy", Rotate.name],
            "fixed": fixed | {"steps": 10, "device": "cpu"},
            "axes": {
                "score": ["scaled_dot", HalvedDot.name],
                "position": ["sinusoidal", WideSinusoidal.name],
                "seed": [0],
            },
        },
    )
    stores = stores_in(tmp_path)
    assert run_study(spec, stores, workers=1, threads=1) == 0
    html, _ = build_report(spec.name, tmp_path / "report", stores.tracking_uri)
    page = html.read_text()
    for cls in NEW.values():
        assert cls.name in page


def test_a_registered_variant_joins_the_presets_that_list_its_set(registered):
    """quick lists `every classic` score and encoding, standard `every`: the new classes
    join their grids with no edit of the preset files."""
    for preset in ("quick", "standard"):
        spec = load_study(PRESETS / f"{preset}.yaml")
        configs = [p.config for p in spec.points()]
        assert HalvedDot.name in {c.score for c in configs}, preset
        assert WideSinusoidal.name in {c.position for c in configs}, preset
