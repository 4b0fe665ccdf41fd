"""A tiny real study against real SQLite stores (Optuna and MLflow), end to end."""

import dataclasses
import fcntl
import io
import re
import time
from collections import Counter

import mlflow.artifacts
import pytest
import torch
import yaml
from builders import BLOCKS, ONE_POINT_AXES, TINY_STUDY, stores_in, study_file
from optuna.trial import TrialState
from study_checks import ARTIFACTS, mlflow_runs

from attnstudy import schema
from attnstudy import study as study_module
from attnstudy.archs import ARCHS, build_model
from attnstudy.cli import main
from attnstudy.config import ConfigError
from attnstudy.evaluate import attention_maps
from attnstudy.measure import attention_names
from attnstudy.registries import make_config
from attnstudy.stores import make_folder, sqlite_path
from attnstudy.study import run_study
from attnstudy.study_config import load_study
from attnstudy.tasks import build_task
from attnstudy.tracking import Tracker
from attnstudy.work_queue import RUN_ID_ATTR, Heartbeat, Queue


def trials(spec, stores):
    return Queue(spec, stores).trials()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny study, run once by two worker processes."""
    tmp_path = tmp_path_factory.mktemp("study")
    spec, stores = study_file(tmp_path, TINY_STUDY), stores_in(tmp_path)
    out = io.StringIO()
    assert run_study(spec, stores, workers=2, threads=1, out=out) == 0
    return spec, stores, out.getvalue()


def test_every_grid_point_has_exactly_one_complete_trial(finished):
    spec, stores, _ = finished
    found = trials(spec, stores)
    assert all(t.state == TrialState.COMPLETE for t in found)
    assert Counter(t.user_attrs["grid_key"] for t in found) == {p.key: 1 for p in spec.points()}


def test_each_trial_has_a_finished_child_run_with_length_history_and_artifacts(finished):
    spec, stores, _ = finished
    client, parents = mlflow_runs(spec, stores, schema.STUDY_ROLE)
    _, children = mlflow_runs(spec, stores, schema.TRIAL_ROLE)
    assert [p.info.status for p in parents] == ["FINISHED"] and len(children) == 4
    grid = mlflow.artifacts.load_dict(f"{parents[0].info.artifact_uri}/{schema.GRID_ARTIFACT}")
    assert sorted(grid) == sorted(p.key for p in spec.points())
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags[schema.STATUS] == "ok"
        assert run.data.tags[schema.PARENT_RUN] == parents[0].info.run_id
        history = client.get_metric_history(run.info.run_id, schema.EVAL_SEQ_ACC)
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert names == ARTIFACTS
        assert run.data.params["score"] in ("dot", "scaled_dot") and len(run.data.params) > 30


def test_every_run_carries_mlflow_s_own_source_and_user_tags(finished):
    """The MLflow UI shows a run's user, source and commit from its standard tags."""
    spec, stores, _ = finished
    for role in (schema.STUDY_ROLE, schema.TRIAL_ROLE):
        for run in mlflow_runs(spec, stores, role)[1]:
            tags = run.data.tags
            assert tags[schema.SOURCE_COMMIT] == tags[schema.GIT_COMMIT]
            assert len(tags[schema.SOURCE_COMMIT]) == 40
            assert tags[schema.SOURCE_NAME] == "attnstudy study run"
            assert tags[schema.SOURCE_TYPE] == "LOCAL" and tags[schema.USER]


def test_trial_and_run_point_to_each_other(finished):
    spec, stores, _ = finished
    client, _ = mlflow_runs(spec, stores, schema.STUDY_ROLE)
    for t in trials(spec, stores):
        run = client.get_run(t.user_attrs[RUN_ID_ATTR])
        assert run.data.tags[schema.TRIAL] == str(t.number)
        assert run.data.tags[schema.GRID_KEY] == t.user_attrs["grid_key"]


def test_progress_prints_one_line_per_trial(finished):
    lines = finished[2].splitlines()
    assert lines[0].startswith("study tiny: 4 grid points, 4 to run (2 workers")
    assert sum(" ok " in line for line in lines) == 4 and lines[-1] == "study tiny: 4 done"


def test_rerun_adds_nothing(finished):
    spec, stores, _ = finished
    before = len(trials(spec, stores)), len(mlflow_runs(spec, stores, schema.TRIAL_ROLE)[1])
    assert run_study(spec, stores, threads=1, out=io.StringIO()) == 0
    assert (
        len(trials(spec, stores)),
        len(mlflow_runs(spec, stores, schema.TRIAL_ROLE)[1]),
    ) == before


def test_a_launcher_logs_the_best_models_holding_the_queue_lock(finished, monkeypatch):
    """Launchers sharing one parent run (scale-out) finish at about the same time: each
    must log the models under the queue lock, so that the second sees the first's tags and
    logs nothing twice (two at once raised a duplicate-tag error on PostgreSQL)."""
    spec, stores, _ = finished
    held = []

    def log_best_models(tracker, parent_id, selected):
        with sqlite_path(stores.storage_url).with_suffix(".lock").open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(True)
            else:
                fcntl.flock(f, fcntl.LOCK_UN)
                held.append(False)

    monkeypatch.setattr(study_module, "log_best_models", log_best_models)
    assert run_study(spec, stores, threads=1, out=io.StringIO()) == 0
    assert held == [True]


def test_a_resumed_study_counts_the_points_an_earlier_launch_queued(tmp_path):
    """A launch interrupted after queueing every point leaves them queued; the next one
    still has all of them to run."""
    spec, stores = study_file(tmp_path, TINY_STUDY), stores_in(tmp_path)
    make_folder(stores.storage_url)
    Queue(spec, stores).fill()
    out = io.StringIO()
    assert run_study(spec, stores, threads=1, out=out) == 0
    assert out.getvalue().startswith("study tiny: 4 grid points, 4 to run (1 worker")


def test_status_reports_every_point(finished, capsys):
    spec, stores, _ = finished
    args = ["study", "status", spec.path, "--runs-dir", str(stores.runs_dir)]
    args += ["--tracking-uri", stores.tracking_uri]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[1] for line in lines[1:-1]) == sorted(p.key for p in spec.points())
    assert all(line.startswith("done") for line in lines[1:-1])
    assert lines[-1] == (
        "study tiny: 4 grid points: 4 done, 0 diverged, 0 running, 0 failed, 0 pending"
    )


def test_status_of_a_study_never_run_is_all_pending(tmp_path, capsys):
    spec, stores = study_file(tmp_path, TINY_STUDY), stores_in(tmp_path)
    from attnstudy.progress import study_status

    assert study_status(spec, stores) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("0 failed, 4 pending")
    assert not stores.runs_dir.exists()


def test_a_changed_grid_is_refused_unless_allowed(finished, tmp_path):
    spec, stores, _ = finished
    grown = TINY_STUDY | {"axes": TINY_STUDY["axes"] | {"heads": [1, 2]}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(grown))
    changed = load_study(path)
    with pytest.raises(ConfigError, match="grid of study 'tiny' changed.*--allow-grid-change"):
        run_study(changed, stores, threads=1, out=io.StringIO())
    queue = Queue(changed, stores)
    queue.check_grid(allow_change=True)  # accepted: the four old points keep their results
    assert sum(s.state == "done" for s in queue.states().values()) == 4
    queue.check_grid(allow_change=False)


@pytest.mark.parametrize("axis, grown", [("heads", [2, 1]), ("position", ["learned", "none"])])
def test_an_axis_that_gains_a_value_runs_only_the_new_points(tmp_path, capsys, axis, grown):
    """Issue 11: a value added to an axis (a new Optuna categorical choice) crashed
    `study run --allow-grid-change`. The finished point keeps its trial, the new one runs
    once, and without the flag the change is refused in one line."""
    one = TINY_STUDY | {"name": "grows", "axes": ONE_POINT_AXES}
    spec, stores = study_file(tmp_path, one), stores_in(tmp_path)
    assert run_study(spec, stores, threads=1, out=io.StringIO()) == 0
    (old,) = trials(spec, stores)
    spec = study_file(tmp_path, one | {"axes": one["axes"] | {axis: grown}})
    args = ["study", "run", spec.path, "--runs-dir", str(stores.runs_dir), "--threads", "1"]
    args += ["--tracking-uri", stores.tracking_uri]
    assert main(args) == 2
    assert "grid of study 'grows' changed" in capsys.readouterr().err
    assert main([*args, "--allow-grid-change"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "study grows: 2 done"
    found = trials(spec, stores)
    assert Counter(t.user_attrs["grid_key"] for t in found) == {p.key: 1 for p in spec.points()}
    assert all(t.state == TrialState.COMPLETE for t in found)
    (kept,) = [t for t in found if t.number == old.number]
    assert kept.datetime_complete == old.datetime_complete and kept.user_attrs == old.user_attrs
    assert len(mlflow_runs(spec, stores, schema.TRIAL_ROLE)[1]) == 2
    assert main([*args, "--allow-grid-change"]) == 0  # and nothing runs twice
    assert (
        len(trials(spec, stores)) == 2 and len(mlflow_runs(spec, stores, schema.TRIAL_ROLE)[1]) == 2
    )


def test_killed_and_crashed_points_rerun_diverged_ones_do_not(tmp_path):
    study = TINY_STUDY | {"name": "resume", "axes": TINY_STUDY["axes"] | {"lr": [3e-3, 1e8]}}
    spec = study_file(tmp_path, study)
    stores = dataclasses.replace(stores_in(tmp_path), heartbeat_s=1, grace_s=1, poll_s=0.2)
    stores.runs_dir.mkdir()
    queue = Queue(spec, stores)
    queue.check_grid(allow_change=False)
    queue.fill()
    # a worker claims a point, opens its MLflow run, and is SIGKILLed (never finishes)
    killed, _ = queue.claim()
    with Heartbeat(queue.storage, queue.trial_id(killed.number), 1):
        tracker = Tracker(stores.tracking_uri, spec.name, stores.runs_dir / "mlartifacts")
        point = queue.points[killed.user_attrs["grid_key"]]
        tags = {schema.TRIAL: str(killed.number)}
        orphan = tracker.start_trial("none", point.config, tags).run_id
    # another crashes with an exception
    crashed, _ = queue.claim()
    queue.finish(queue.trial_id(crashed.number), "failed", "RuntimeError: boom", {})
    time.sleep(2.5)  # the killed trial's heartbeat goes stale

    assert run_study(spec, stores, threads=1, out=io.StringIO()) == 0
    states = {k: s.state for k, s in queue.states().items()}
    assert Counter(states.values()) == {"done": 4, "diverged": 4}
    found = queue.trials()
    assert Counter(t.user_attrs.get("status", "killed") for t in found) == {
        "ok": 4,
        "diverged": 4,
        "failed": 1,
        "killed": 1,
    }
    assert tracker.client.get_run(orphan).info.status == "KILLED"
    _, runs = mlflow_runs(spec, stores, schema.TRIAL_ROLE)
    assert "RUNNING" not in {r.info.status for r in runs}
    diverged = [r for r in runs if r.data.tags[schema.STATUS] == "diverged"]
    assert {r.info.status for r in diverged} == {"FAILED"} and len(diverged) == 4
    assert all(r.data.tags[schema.REASON].startswith("diverged at step") for r in diverged)

    assert run_study(spec, stores, threads=1, out=io.StringIO()) == 0  # diverged: not retried
    assert len(queue.trials()) == len(found)


@pytest.fixture(scope="module")
def blocks_run(tmp_path_factory):
    """A study of three blocks, one point shared by two of them, run once."""
    tmp_path = tmp_path_factory.mktemp("blocks")
    spec, stores = study_file(tmp_path, BLOCKS), stores_in(tmp_path)
    out = io.StringIO()
    assert run_study(spec, stores, threads=1, out=out) == 0
    return spec, stores, out.getvalue()


def test_a_study_of_blocks_runs_each_distinct_point_once(blocks_run):
    spec, stores, out = blocks_run
    assert out.startswith("study blocks: 4 grid points in 3 blocks, 1 duplicate merged, 4 to run")
    found = trials(spec, stores)
    assert {t.state for t in found} == {TrialState.COMPLETE}
    assert Counter(t.user_attrs["grid_key"] for t in found) == {p.key: 1 for p in spec.points()}
    attrs = {
        t.user_attrs["grid_key"]: (t.user_attrs["block"], t.user_attrs["solvable"]) for t in found
    }
    assert attrs == {
        "scores/score=dot,task=copy": ("scores,positions", True),
        "scores/score=scaled_dot,task=copy": ("scores", True),
        "positions/position=learned,task=copy": ("positions", True),
        "nope_encoder/score=cosine,task=copy": ("nope_encoder", False),
    }


def test_every_trial_run_of_a_block_study_is_tagged_with_its_block(blocks_run):
    spec, stores, _ = blocks_run
    _, parents = mlflow_runs(spec, stores, schema.STUDY_ROLE)
    _, children = mlflow_runs(spec, stores, schema.TRIAL_ROLE)
    assert (
        len(parents) == 1 and parents[0].data.tags[schema.BLOCKS] == "scores,positions,nope_encoder"
    )
    points = {p.key: p for p in spec.points()}
    for run in children:
        point = points[run.data.tags[schema.GRID_KEY]]
        assert run.data.tags[schema.PARENT_RUN] == parents[0].info.run_id
        assert run.data.tags[schema.BLOCK] == ",".join(point.blocks)
        assert run.data.tags[schema.SOLVABLE] == str(point.solvable).lower()
        assert run.data.params["arch"] == point.config.arch
    assert len(children) == 4


def test_a_study_of_blocks_resumes_and_its_status_counts_each_block(blocks_run, capsys):
    spec, stores, _ = blocks_run
    assert run_study(spec, stores, threads=1, out=io.StringIO()) == 0
    assert (
        len(trials(spec, stores)) == 4 and len(mlflow_runs(spec, stores, schema.TRIAL_ROLE)[1]) == 4
    )
    args = ["study", "status", spec.path, "--runs-dir", str(stores.runs_dir)]
    assert main([*args, "--tracking-uri", stores.tracking_uri]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[1]: line for line in lines[1:5]}
    assert sorted(rows) == sorted(p.key for p in spec.points())
    assert all(r.startswith("done") for r in rows.values())
    assert "unsolvable by construction" in rows["nope_encoder/score=cosine,task=copy"]
    assert lines[5:] == [
        "block scores: 2 grid points: 2 done, 0 diverged, 0 running, 0 failed, 0 pending",
        "block positions: 2 grid points: 2 done, 0 diverged, 0 running, 0 failed, 0 pending",
        "block nope_encoder: 1 grid points: 1 done, 0 diverged, 0 running, 0 failed, 0 pending",
        "study blocks: 4 grid points: 4 done, 0 diverged, 0 running, 0 failed, 0 pending",
    ]


def test_declaring_a_block_unsolvable_later_is_a_grid_change(blocks_run, tmp_path):
    spec, stores, _ = blocks_run
    study = yaml.safe_load(yaml.safe_dump(BLOCKS))
    study["blocks"]["positions"]["solvable"] = False
    study["blocks"]["scores"]["axes"]["score"] = ["scaled_dot"]  # no point shared any more
    changed = study_file(tmp_path, study)
    with pytest.raises(ConfigError, match="grid of study 'blocks' changed"):
        run_study(changed, stores, threads=1, out=io.StringIO())


def test_status_of_a_study_of_blocks_never_run_is_all_pending(tmp_path, capsys):
    from attnstudy.progress import study_status

    spec, stores = study_file(tmp_path, BLOCKS), stores_in(tmp_path)
    assert study_status(spec, stores) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[-4]
        == "block scores: 2 grid points: 0 done, 0 diverged, 0 running, 0 failed, 2 pending"
    )
    assert lines[-1].endswith("4 grid points: 0 done, 0 diverged, 0 running, 0 failed, 4 pending")
    assert not stores.runs_dir.exists()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_attention_map_of_every_arch_gets_its_own_name(arch):
    cfg = make_config(**TINY_STUDY["fixed"], arch=arch, heads=2)
    task = build_task("copy", cfg.eval_max_len)
    weights, _ = attention_maps(build_model(cfg, task), task, 3, 0, torch.device("cpu"))
    names = attention_names(build_model(cfg, task))
    assert len(names) == len(set(names)) == len(weights)
    assert all(re.fullmatch(r"layer\d+_(self|cross)", n) for n in names)
