import itertools
from pathlib import Path

import pytest
import yaml

from attnstudy.cli import main
from attnstudy.config import ConfigError
from attnstudy.scores import SCORES
from attnstudy.study_config import fingerprint, grid_order, load_study

PRESETS = sorted((Path(__file__).parent.parent / "study").glob("*.yaml"))
BASE = {
    "name": "s",
    "tasks": ["copy", "reverse"],
    "fixed": {"d_model": 16, "train_max_len": 4, "eval_max_len": 8},
    "axes": {"score": ["dot", "additive"], "heads": [1, 2]},
}


def write(tmp_path, study: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_grid_is_the_product_of_the_axes_minus_exclusions(tmp_path):
    study = BASE | {"exclude": [{"task": "reverse", "heads": 2}]}
    points = load_study(write(tmp_path, study)).points()
    product = set(itertools.product(["copy", "reverse"], ["dot", "additive"], [1, 2]))
    expected = product - {("reverse", s, 2) for s in ("dot", "additive")}
    assert {(p.config.task, p.config.score, p.config.heads) for p in points} == expected
    assert len({p.key for p in points}) == len(points) == 6
    assert all(p.config.d_model == 16 and p.config.eval_max_len == 8 for p in points)


def test_an_exclusion_may_list_several_values_of_an_axis(tmp_path):
    study = BASE | {"exclude": [{"task": "reverse", "score": ["dot", "additive"], "heads": 1}]}
    points = load_study(write(tmp_path, study)).points()
    assert len(points) == 6
    assert not any(p.config.task == "reverse" and p.config.heads == 1 for p in points)


def test_grid_key_names_every_axis_value_in_sorted_order(tmp_path):
    point = load_study(write(tmp_path, BASE)).points()[0]
    assert point.key == ",".join(f"{k}={point.params[k]}" for k in ("heads", "score", "task"))


def test_grid_order_is_seeded_and_covers_the_product_once():
    axes = {"a": (1, 2, 3), "b": ("x", "y", "z", "w")}
    first, again, other = grid_order(axes, 0), grid_order(axes, 0), grid_order(axes, 1)
    assert first == again and first != other
    combos = [tuple(p.values()) for p in first]
    assert sorted(combos) == sorted(itertools.product(*axes.values()))


def test_values_are_typed_as_in_config(tmp_path):
    study = BASE | {"axes": {"lr": ["3e-3", 0.01], "randomized": [False]}}
    study["axes"]["position"] = ["learned"]
    spec = load_study(write(tmp_path, study))
    assert spec.axes["lr"] == (0.003, 0.01) and spec.axes["randomized"] == (False,)
    assert {type(p.config.lr) for p in spec.points()} == {float}


def test_fingerprint_changes_with_settings_and_axes(tmp_path):
    base = fingerprint(load_study(write(tmp_path, BASE)).points())
    assert fingerprint(load_study(write(tmp_path, BASE)).points()) == base
    steps = BASE | {"fixed": BASE["fixed"] | {"steps": 7}}
    assert fingerprint(load_study(write(tmp_path, steps)).points()) != base
    heads = BASE | {"axes": BASE["axes"] | {"heads": [1, 2, 4]}}
    assert fingerprint(load_study(write(tmp_path, heads)).points()) != base


@pytest.mark.parametrize(
    "change,message",
    [
        ({"axis": {}}, "unknown key 'axis'; allowed: name, description, tasks"),
        ({"name": "a b"}, "name: expected letters"),
        ({"tasks": ["copy", "nope"]}, "tasks: unknown task 'nope'; allowed: copy, reverse"),
        ({"tasks": []}, "tasks: expected a non-empty list"),
        ({"fixed": {"d_modle": 16}}, "fixed: unknown setting 'd_modle'; allowed: train_min_len"),
        ({"fixed": {"steps": "many"}}, "fixed.steps: expected int, got 'many'"),
        ({"axes": {"score": ["dott"]}}, "axes.score: unknown value 'dott'; allowed: dot, scaled"),
        ({"axes": {"score": "dot"}}, "axes.score: expected a non-empty list of values"),
        ({"axes": {"heads": [2, 2]}}, "axes.heads: values repeat"),
        ({"axes": {"task": ["copy"]}}, "axes.task: list tasks under the top-level key 'tasks'"),
        ({"axes": {"d_model": [8]}}, "axes.d_model: also in fixed"),
        ({"axes": {"heads": [3]}}, "axes.heads: must divide d_model=16"),
        ({"exclude": [{"seed": 1}]}, "exclude[0]: 'seed' is not an axis"),
        ({"exclude": [{"heads": 8}]}, "exclude[0].heads: 8 is not on the axis; allowed: 1, 2"),
        ({"fixed": BASE["fixed"] | {"eval_max_len": 4}}, "fixed.eval_max_len: must exceed"),
        (
            {"exclude": [{"task": ["copy", "reverse"]}]},
            "exclude: the exclusions remove all 8 grid points; at least one must remain",
        ),
    ],
)
def test_bad_study_files_name_the_file_the_key_and_what_is_allowed(tmp_path, change, message):
    path = write(tmp_path, BASE | change)
    with pytest.raises(ConfigError) as err:
        load_study(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_an_invalid_combination_names_its_grid_point(tmp_path):
    study = BASE | {"axes": {"position": ["rope", "none"], "heads": [4]}}
    study["fixed"] = {"d_model": 12, "train_max_len": 4}
    with pytest.raises(ConfigError, match=r"grid point heads=4,position=rope,task=\w+"):
        load_study(write(tmp_path, study))


def test_unreadable_and_malformed_files_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_study(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(bad)


def test_cli_reports_a_bad_study_file_in_one_line(tmp_path, capsys):
    path = write(tmp_path, BASE | {"axes": {"score": ["dott"]}})
    assert main(["study", "status", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "axes.score: unknown value 'dott'" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_is_valid(path):
    spec = load_study(path)
    assert spec.name == path.stem and spec.points()


def test_quick_preset_covers_what_the_issue_requires():
    spec = load_study(Path(__file__).parent.parent / "study" / "quick.yaml")
    assert set(spec.axes["score"]) == set(SCORES)
    assert {"none", "sinusoidal", "learned", "relative"} <= set(spec.axes["position"])
    assert len(spec.axes["heads"]) >= 2 and spec.axes["task"]


def test_replication_presets_follow_their_papers():
    root = Path(__file__).parent.parent / "study"
    kaz = load_study(root / "replicate-kazemnejad.yaml")
    assert {p.config.arch for p in kaz.points()} == {"decoder"}
    assert set(kaz.axes["task"]) == {"copy", "reverse"} and len(kaz.axes["seed"]) == 3
    assert set(kaz.axes["position"]) == {"none", "t5", "alibi", "rope", "sinusoidal"}
    assert {(p.config.train_max_len, p.config.eval_max_len) for p in kaz.points()} == {(20, 40)}
    dele = load_study(root / "replicate-deletang.yaml")
    assert {p.config.arch for p in dele.points()} == {"encoder"}
    assert {(p.config.train_min_len, p.config.train_max_len) for p in dele.points()} == {(1, 40)}
    assert {p.config.randomized for p in dele.points()} == {False, True}
