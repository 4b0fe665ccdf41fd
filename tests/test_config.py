"""The defaults a 0 stands for (config.ZERO_MEANS) are resolved once, by make_config, to
the numbers the model derived from them before (issue 31): a built Config holds what runs,
the same model and results come of it, and study stores keep their points' hashes."""

import pytest
import torch
import yaml
from builders import TINY_MODEL, TINY_TRAINING

from attnstudy.archs import ARCHS, build_model
from attnstudy.config import ConfigError, coerce_config
from attnstudy.positions import ShawRelativePositions
from attnstudy.registries import make_config
from attnstudy.sequences import padded_rows
from attnstudy.study_config import load_study
from attnstudy.tasks import TASKS, build_task, sample_lengths
from attnstudy.train import run

RESOLVED = ("eval_max_len", "max_random_position", "relative_clip", "eval_samples_far")
TRANSFORMERS = ("decoder", "encoder", "encoder-decoder")
TIMES = {"step_time_ms", "activation_mb"} | {"validation_seconds", "evaluation_seconds"}


def relative(arch: str, task: str, randomized: bool, **more) -> dict:
    return (
        TINY_MODEL
        | dict(arch=arch, task=task, position="relative", randomized=randomized, train_max_len=4)
        | more
    )


def explicit(cfg) -> dict:
    """cfg's settings with every resolved default given as the number it resolved to."""
    return {k: v for k, v in cfg.to_dict().items() if k != "device"}


def test_make_config_resolves_each_default_to_its_number():
    cfg = make_config(**relative("decoder", "copy", False), eval_samples=8)
    # 4 x 4; 4 x (16 + 16 + 3); BOS 4 SEP 4 fed, 9 apart; eval_samples
    assert [getattr(cfg, f) for f in RESOLVED] == [16, 140, 9, 8]
    randomized = make_config(**relative("decoder", "copy", True))
    assert randomized.relative_clip == 139  # trained on the whole random range
    given = make_config(**relative("decoder", "copy", True), max_random_position=50)
    assert (given.max_random_position, given.relative_clip) == (50, 49)
    assert make_config(**relative("decoder", "copy", False), relative_clip=3).relative_clip == 3


# The clip of each Transformer's encoding (encoder first) and the random range that the
# model derived itself before make_config resolved them, measured at commit 1772ae3.
MEASURED = {
    ("decoder", "copy", False): ([9], 0),
    ("decoder", "sorted_recall", True): ([267], 268),
    ("encoder", "addition", False): ([15], 0),
    ("encoder", "sort", True): ([135], 136),
    ("encoder-decoder", "copy", False): ([4, 4], 0),
    ("encoder-decoder", "sorted_recall", False): ([8, 8], 0),
    ("encoder-decoder", "duplicate", False): ([4, 8], 0),
    ("encoder-decoder", "addition", False): ([9, 5], 0),
    ("encoder-decoder", "associative_recall", False): ([9, 1], 0),
    ("encoder-decoder", "addition", True): ([135, 135], 136),
}


@pytest.mark.parametrize("point", MEASURED, ids=lambda p: "/".join(map(str, p)))
def test_the_model_uses_the_clips_and_range_it_derived_before(point):
    model = build_model(make_config(**relative(*point)), build_task(point[1], 16))
    clips = [m.clip for m in model.modules() if isinstance(m, ShawRelativePositions)]
    assert (clips, model.random_range) == MEASURED[point]


def test_relative_clip_keeps_0_only_where_no_one_number_is_its_default():
    """An encoder-decoder whose encoder and decoder train on different lengths clips each
    at its own (MEASURED); an architecture without positions has none."""
    for arch, task in [(a, t) for a in ARCHS for t in TASKS]:
        cfg = make_config(**TINY_MODEL, arch=arch, task=task)
        assert all(getattr(cfg, f) for f in RESOLVED if f != "relative_clip")
        fed = set(ARCHS[arch].fed_positions(TASKS[task](4), 6)) if arch in TRANSFORMERS else ()
        assert (cfg.relative_clip == 0) == (len(fed) != 1), (arch, task)


@pytest.mark.parametrize(
    "settings",
    [relative(arch, "duplicate", r) for arch in TRANSFORMERS for r in (False, True)]
    + [TINY_MODEL | dict(arch=arch) for arch in ARCHS if arch not in TRANSFORMERS],
)
def test_make_config_of_a_built_config_gives_it_back(settings):
    cfg = make_config(**settings)
    assert make_config(**explicit(cfg)) == cfg


@pytest.mark.parametrize("arch", TRANSFORMERS)
@pytest.mark.parametrize("task", ["copy", "duplicate", "addition"])
@pytest.mark.parametrize("randomized", [False, True])
def test_a_default_and_its_number_build_the_same_model(arch, task, randomized):
    default = make_config(**relative(arch, task, randomized))
    given = coerce_config(**explicit(default))
    assert given == default
    a, b = (built(cfg) for cfg in (default, given))
    assert {k: v.shape for k, v in a[0].items()} == {k: v.shape for k, v in b[0].items()}
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert all(torch.equal(x, y) for x, y in zip(a[1:], b[1:], strict=True))


def built(cfg) -> tuple:
    """cfg's initial parameters, hidden states and greedy predictions on a fixed batch."""
    task = build_task(cfg.task, cfg.eval_max_len)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, task).eval()
    gen = torch.Generator().manual_seed(1)
    batch = task.sample(sample_lengths(1, cfg.eval_max_len, 8, gen), gen)
    with torch.no_grad():
        hidden, _ = model.labelled(batch, torch.Generator().manual_seed(2), padded_rows)
        predicted = model.predict(batch, torch.Generator().manual_seed(2))
    return model.state_dict(), hidden, predicted


@pytest.mark.parametrize(
    "point", [("encoder-decoder", "duplicate", False), ("decoder", "copy", True)]
)
def test_a_trained_run_is_the_same_from_a_default_and_from_its_number(point):
    settings = TINY_TRAINING | relative(*point) | dict(eval_max_len=0, stop_at_val_acc=2.0)
    default = run(make_config(**settings))
    given = run(make_config(**explicit(default.config)))
    assert measured(default.summary) == measured(given.summary)
    assert default.per_length == given.per_length


def measured(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMES and not k.endswith("_seconds")}


def test_inputs_may_still_say_0_but_not_an_explicit_number_out_of_range():
    assert make_config(eval_max_len=0, relative_clip=0, max_random_position=0).eval_max_len == 64
    with pytest.raises(ConfigError, match="eval_max_len: must be 0 .* or >= train_max_len"):
        make_config(eval_max_len=3, train_max_len=4)


def test_a_study_point_keeps_the_hash_of_its_settings_as_given(tmp_path):
    """Trials and runs carry the hash of the point's settings with their defaults as
    given, as before make_config resolved them, so stores started before resume without
    running a point twice: these two were computed at commit 1772ae3."""
    study = {
        "name": "s",
        "tasks": ["copy"],
        "fixed": {"d_model": 16, "train_max_len": 4},
        "axes": {"position": ["relative"], "randomized": [False, True]},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    points = load_study(tmp_path / "s.yaml").points()
    hashes = {p.config.relative_clip: p.config_hash for p in points}  # resolved, 9 apart
    assert hashes == {9: "934ccc6a2595", 139: "a6191db7e98f"}
    assert all(p.config_hash == coerce_config(**p.params, **study["fixed"]).hash() for p in points)
