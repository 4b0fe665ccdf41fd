"""Optuna sees the study's axes: every trial carries its point's axis values as params over
one categorical distribution per axis, and `study importance` (and the report) rank the
axes by Optuna's importances. The trials are finished by the queue itself with chosen
metrics (no training), so the ranking they must give is known."""

import optuna
import pandas as pd
import pytest
from builders import TINY_STUDY, stores_in, study_file
from optuna.importance import get_param_importances
from optuna.trial import TrialState, create_trial

from attnstudy.analysis.importance import (
    METRICS,
    importance_table,
    report_importance,
    study_frame,
    trial_frame,
)
from attnstudy.cli import main
from attnstudy.schema import BEST_VAL_SEQ_ACC, ID_SEQ_ACC, NEAR_OOD_SEQ_ACC
from attnstudy.work_queue import GRID_KEY_ATTR, Queue, read_trials


def metrics_of(params: dict) -> dict[str, float]:
    """ID exact match decided by the score, OOD by the position (a little by the score)."""
    dot, none = params["score"] == "dot", params["position"] == "none"
    return {
        BEST_VAL_SEQ_ACC: 0.9 if dot else 0.2,
        ID_SEQ_ACC: 0.9 if dot else 0.2,
        NEAR_OOD_SEQ_ACC: (0.1 if none else 0.7) + (0.05 if dot else 0.0),
    }


def finish_all(queue: Queue) -> None:
    while (trial := queue.claim()[0]) is not None:
        summary = metrics_of(queue.points[trial.user_attrs[GRID_KEY_ATTR]].params)
        queue.finish(queue.trial_id(trial.number), "ok", None, summary)


def start(tmp_path, study: dict) -> tuple[Queue, list]:
    spec, stores = study_file(tmp_path, study), stores_in(tmp_path)
    stores.runs_dir.mkdir(exist_ok=True)
    queue = Queue(spec, stores)
    queue.check_grid(allow_change=True)
    with queue.lock():
        queue.fill()
    return queue, ["study", "importance", spec.path, "--runs-dir", str(stores.runs_dir)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny study's grid (score × position; heads fixed), every point finished."""
    queue, args = start(tmp_path_factory.mktemp("importance"), TINY_STUDY)
    finish_all(queue)
    return queue, args


def stored(queue: Queue):
    """The study's trials as a fresh process reads them (not this process's cache)."""
    return read_trials(queue.spec.name, queue.stores)


def test_every_trial_carries_its_point_s_axis_values_as_optuna_params(finished):
    queue, _ = finished
    trials = stored(queue)
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        assert t.params == queue.points[t.user_attrs[GRID_KEY_ATTR]].params
    assert trials[0].distributions["score"].choices == ("dot", "scaled_dot")
    assert all(t.distributions == trials[0].distributions for t in trials)


def test_optuna_s_own_importances_see_the_axes_that_vary(finished):
    """As optuna-dashboard loads the study: straight from the storage."""
    queue, _ = finished
    study = optuna.load_study(study_name=queue.spec.name, storage=queue.stores.storage_url)
    found = get_param_importances(study, params=["score", "position"])
    assert set(found) == {"score", "position"} and found["score"] > found["position"]


def test_importance_ranks_the_axis_that_decides_each_metric_first(finished):
    queue, _ = finished
    frame = study_frame(queue.spec, queue.stores)
    table = importance_table(frame, ["score", "position", "heads"])
    by_axis = {row["axis"]: row for row in table.rows}
    assert set(by_axis) == {"score", "position"}  # heads is fixed: not an axis that varies
    assert float(by_axis["score"][ID_SEQ_ACC]) > float(by_axis["position"][ID_SEQ_ACC])
    assert float(by_axis["position"][NEAR_OOD_SEQ_ACC]) > float(by_axis["score"][NEAR_OOD_SEQ_ACC])
    assert table.rows == importance_table(frame, ["score", "position"]).rows  # seeded


def test_study_importance_prints_a_row_per_varying_axis(finished, capsys):
    _, args = finished
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "fANOVA" in lines[0] and lines[1].split() == ["axis", *METRICS]
    assert [line.split()[0] for line in lines[2:]] == ["score", "position"]


def test_an_axis_that_gains_a_value_widens_every_trial_s_distribution(tmp_path):
    """Optuna refuses a categorical param whose choices differ from the stored ones: the
    stored distribution grows instead, and the finished trials keep their values."""
    queue, _ = start(tmp_path, TINY_STUDY)
    finish_all(queue)
    grown = TINY_STUDY | {"axes": TINY_STUDY["axes"] | {"position": ["none", "learned", "alibi"]}}
    wider, _ = start(tmp_path, grown)
    trials = stored(wider)
    assert len(trials) == 6 and trials[0].distributions["position"].choices == (
        "learned",
        "none",
        "alibi",
    )
    assert all(t.distributions == trials[0].distributions for t in trials)
    for t in trials:
        assert t.params == wider.points[t.user_attrs[GRID_KEY_ATTR]].params


def test_an_unknown_study_file_is_an_error(tmp_path, capsys):
    assert main(["study", "importance", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_a_study_never_run_is_an_error_that_says_to_run_it(tmp_path, capsys):
    spec = study_file(tmp_path, TINY_STUDY)
    runs = tmp_path / "runs"
    assert main(["study", "importance", spec.path, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "has no finished trials" in err and "study run" in err and not runs.exists()


def test_one_finished_trial_is_too_few(tmp_path, capsys):
    queue, args = start(tmp_path, TINY_STUDY)
    trial, _ = queue.claim()
    summary = metrics_of(queue.points[trial.user_attrs[GRID_KEY_ATTR]].params)
    queue.finish(queue.trial_id(trial.number), "ok", None, summary)
    assert main(args) == 2
    assert "need at least 2 finished trials" in capsys.readouterr().err


def test_the_report_table_reads_the_ok_runs_varied_settings():
    runs = pd.DataFrame(
        {
            "status": ["ok", "ok", "ok", "diverged"],
            "score": ["dot", "dot", "additive", "additive"],
            "lr": [1e-3, 1e-2, 1e-3, 1e-2],
            ID_SEQ_ACC: [0.9, 0.8, 0.1, float("nan")],
            NEAR_OOD_SEQ_ACC: [0.5, 0.1, 0.1, float("nan")],
        }
    )
    table = report_importance(runs, ["score", "lr"])
    assert [row["axis"] for row in table.rows] == ["score", "lr"]
    assert report_importance(runs[runs["score"] == "dot"], ["score"]) is None


def test_a_trial_queued_before_the_axes_were_params_still_counts(finished):
    queue, _ = finished
    old = stored(queue)[0]
    attrs_only = create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs=old.user_attrs)
    assert trial_frame([attrs_only]).iloc[0]["score"] == old.params["score"]
