"""The MLflow UI over a tiny real study (real training, real SQLite stores, the real
`attnstudy ui` server, headless Chromium): the runs it shows, their names and tags, the
parent run's summary, and what else MLflow users expect: each encoding's best model
loadable with mlflow.pytorch, per-position accuracy as a table, system metrics.

ATTNSTUDY_SCREENSHOTS=DIR keeps the screenshots there (docs/img for the README)."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from statistics import fmean

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from chromium import app_page, ensure
from hypothesis import given
from hypothesis import strategies as st
from mlflow import MlflowClient
from servers import _answers, free_port, stop, wait_for

from attnstudy.analysis.importance import axis_columns, importance_table, study_frame
from attnstudy.analysis.load import load_study as load_frames
from attnstudy.cli import main
from attnstudy.logged_model import trained_model
from attnstudy.positions import POSITIONS
from attnstudy.provenance import cpu_model
from attnstudy.registries import make_config
from attnstudy.schema import (
    BEST_VAL_NEXT_TOKEN_ACC,
    BEST_VAL_SEQ_ACC,
    CPU,
    DESCRIPTION,
    DEVICE,
    ENVIRONMENT,
    ENVIRONMENT_ARTIFACT,
    EVAL_SEQ_ACC,
    EVAL_TOKEN_ACC,
    EXPERIMENT_KIND,
    ID_SEQ_ACC,
    LOGGED_ARTIFACTS,
    NOTE,
    OOD_SEQ_ACC,
    POSITION_TABLE,
    ROLE,
    STATUS,
    STUDY_ROLE,
    THREADS,
    TRIAL_ROLE,
    TRIAL_RUN,
    best_variant,
    model_source,
    points_metric,
    version_tag,
)
from attnstudy.stores import make_stores
from attnstudy.study import run_study
from attnstudy.study_config import load_study
from attnstudy.tracking import best_per_encoding, run_name

DIVERGES = 1e8  # a learning rate that makes loss nan at once
STUDY = {
    "name": "tiny-ui",
    "description": "A tiny study for the MLflow UI test.",
    "tasks": ["copy"],
    "fixed": {
        "d_model": 32,
        "n_layers": 1,
        "heads": 2,
        "train_max_len": 4,
        "eval_max_len": 8,
        "steps": 100,
        "val_every": 50,
        "val_samples": 16,
        "eval_samples": 8,
        "warmup_steps": 5,
    },
    "axes": {"position": ["none", "rope"], "seed": [0, 1], "lr": [0.005, DIVERGES]},
    "exclude": [{"lr": DIVERGES, "seed": 1}, {"lr": DIVERGES, "position": "rope"}],
}
ASSISTANT_CLOSED = {"mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study run once (4 trials trained, 1 diverged), with its MLflow runs; system
    metrics sampled often enough that a run of a few seconds gets some."""
    root = tmp_path_factory.mktemp("ui")
    path = root / "tiny-ui.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    spec = load_study(path)
    uri = f"sqlite:///{root}/runs/mlflow.db"
    stores = make_stores(root / "runs", tracking_uri=uri)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
        assert run_study(spec, stores, threads=1, out=io.StringIO()) == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(spec.name)
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags[ROLE] == TRIAL_ROLE]
    (parent,) = [r for r in runs if r.data.tags[ROLE] == STUDY_ROLE]
    found = {"root": root, "uri": uri, "optuna": stores.storage_url, "experiment": experiment}
    return found | {"trials": trials, "parent": parent}


def test_trial_runs_are_named_and_tagged_by_their_variant(study):
    assert len(study["trials"]) == 5
    for run in study["trials"]:
        p, tags = run.data.params, run.data.tags
        name = f"{p['task']}·{p['arch']}·{p['position']}·{p['score']}·h{p['heads']}·s{p['seed']}"
        assert run.info.run_name == name
        assert tags["encoding"] == p["position"] and tags["score"] == p["score"]
        assert tags["encoding_family"] == POSITIONS[p["position"]].family
        for axis in ("task", "arch", "heads", "seed"):
            assert tags[axis] == p[axis]
        assert tags["randomized"] == p["randomized"].lower() == "false"


def test_randomized_runs_say_so_in_their_name():
    cfg = make_config(position="rope", randomized=True, heads=4, seed=3)
    assert run_name(cfg) == "copy·decoder·rope·scaled_dot·h4·s3·rand"
    assert run_name(cfg, seed=False) == "copy·decoder·rope·scaled_dot·h4·rand"


def test_every_run_records_the_machine_it_ran_on(study):
    for run in [*study["trials"], study["parent"]]:
        tags = run.data.tags
        assert tags[CPU] == cpu_model() != ""
        assert tags[THREADS] == "1"  # run_study(threads=1)
        assert tags[version_tag("torch")] == torch.__version__
    assert {r.data.tags[DEVICE] for r in study["trials"]} == {"cpu"}


def test_accuracy_by_length_is_a_metric_history_over_every_length(study):
    client = MlflowClient(study["uri"])
    for run in study["trials"]:
        if run.data.tags[STATUS] == "ok":
            for key in (EVAL_SEQ_ACC, EVAL_TOKEN_ACC):
                steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
                assert steps == list(range(1, STUDY["fixed"]["eval_max_len"] + 1))


def test_parent_run_counts_the_points_and_names_each_encodings_best_variant(study):
    parent = study["parent"].data
    points = {"done": 4, "diverged": 1, "failed": 0, "pending": 0}
    assert {state: parent.metrics[points_metric(state)] for state in points} == points
    by_variant: dict[str, list] = {}  # the trials' own MLflow metrics, seeds pooled
    for run in study["trials"]:
        if run.data.tags[STATUS] == "ok":
            variant = run.info.run_name.rsplit("·", 1)[0]
            by_variant.setdefault(variant, []).append(run.data.metrics[BEST_VAL_SEQ_ACC])
    for encoding in ("none", "rope"):
        mine = {v: fmean(accs) for v, accs in by_variant.items() if f"·{encoding}·" in v}
        best = parent.tags[best_variant(encoding)]
        assert mine[best] == max(mine.values())
        assert re.search(rf"\| {encoding} \| {re.escape(best)} \| 2 \| ", parent.tags[NOTE])
    assert parent.tags[NOTE].startswith(STUDY["description"])
    assert parent.tags[DESCRIPTION] == STUDY["description"]  # what the report shows
    assert parent.tags[ENVIRONMENT].startswith(("matches constraints.txt", "1 of", "2 of"))


def test_parent_run_logs_the_package_versions_the_study_ran_with(study):
    client = MlflowClient(study["uri"])
    path = client.download_artifacts(study["parent"].info.run_id, ENVIRONMENT_ARTIFACT)
    pins = dict(line.split("==") for line in Path(path).read_text().splitlines()[1:])
    assert pins["torch"] == torch.__version__.split("+")[0]
    assert pins["mlflow"] == mlflow.__version__


LOAD_MODELS = """
import json, sys
import mlflow, mlflow.pytorch, torch
from mlflow.models import Model

mlflow.set_tracking_uri(sys.argv[1])
answers = {}
for model_id in sys.argv[2:]:
    uri = f"models:/{model_id}"
    model = mlflow.pytorch.load_model(uri)
    example = Model.load(uri).load_input_example(mlflow.artifacts.download_artifacts(uri))
    answers[model_id] = [example.tolist(), model(torch.from_numpy(example)).tolist()]
print(json.dumps(answers))
"""


def test_parent_run_logs_each_encodings_best_model_which_loads_elsewhere_and_predicts(study):
    """`model-<encoding>`: the weights of the best variant's seed with the best validation,
    loaded by mlflow.pytorch.load_model in a fresh process, answering its input example as
    the trial's own weights do here."""
    client, parent = MlflowClient(study["uri"]), study["parent"]
    models = client.search_logged_models([study["experiment"].experiment_id])
    assert sorted(m.name for m in models) == ["model-none", "model-rope"]
    trials = {r.info.run_id: r for r in study["trials"]}
    for model in models:
        trial = trials[model.tags[TRIAL_RUN]]
        encoding = model.name.removeprefix("model-")
        assert trial.info.run_name.rsplit("·", 1)[0] == parent.data.tags[best_variant(encoding)]
        seeds = [r for r in trials.values() if variant(r) == variant(trial)]
        best = max(r.data.metrics.get(BEST_VAL_SEQ_ACC, -1) for r in seeds)
        assert len(seeds) == 2 and trial.data.metrics[BEST_VAL_SEQ_ACC] == best
        assert model.source_run_id == parent.info.run_id
        assert (
            client.get_run(parent.info.run_id).data.tags[model_source(encoding)]
            == trial.info.run_id
        )
    argv = [sys.executable, "-c", LOAD_MODELS, study["uri"], *(m.model_id for m in models)]
    loaded = subprocess.run(argv, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    answers = json.loads(loaded.stdout)
    for model in models:
        example, answer = answers[model.model_id]
        trial = trials[model.tags[TRIAL_RUN]]
        here = trained_model(client, trial.info.run_id, make_config(**trial.data.params))
        inputs = torch.tensor(example)
        assert inputs.dtype == torch.int64 and inputs.shape == (4, STUDY["fixed"]["train_max_len"])
        assert answer == here(inputs).tolist()
        assert len(answer[0]) == STUDY["fixed"]["train_max_len"] + 1  # the copy, then EOS


def variant(run) -> dict[str, str]:
    """A trial run's params but its seed."""
    return {k: v for k, v in run.data.params.items() if k != "seed"}


def test_per_position_accuracy_is_a_table_the_analysis_reads(study, tmp_path):
    client = MlflowClient(study["uri"])
    frames = load_frames(STUDY["name"], study["uri"])
    for run in study["trials"]:
        if run.data.tags[STATUS] != "ok":
            continue
        assert not any(key.startswith("pos_token_acc") for key in run.data.metrics)
        (logged,) = json.loads(run.data.tags[LOGGED_ARTIFACTS])
        assert logged == {"path": POSITION_TABLE, "type": "table"}
        path = client.download_artifacts(run.info.run_id, POSITION_TABLE, str(tmp_path))
        logged_table = json.loads(Path(path).read_text())  # {"columns": [...], "data": [...]}
        table = pd.DataFrame(logged_table["data"], columns=logged_table["columns"])
        assert list(table.columns) == ["split", "length", "target_pos", "token_acc"]
        read = frames.positions[frames.positions["run_id"] == run.info.run_id]
        assert read[list(table.columns)].reset_index(drop=True).equals(table)


@pytest.mark.skipif(importlib.util.find_spec("psutil") is None, reason="psutil not installed")
def test_parent_run_samples_system_metrics_and_stops_sampling(study):
    client = MlflowClient(study["uri"])
    run_id = study["parent"].info.run_id
    cpu = client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert cpu and {"system/system_memory_usage_megabytes"} <= set(study["parent"].data.metrics)
    assert "SystemMetricsMonitor" not in {t.name for t in threading.enumerate()}


SCORE = st.floats(0, 1, allow_nan=False)


@given(
    st.lists(
        st.tuples(st.sampled_from(["none", "rope", "alibi"]), st.sampled_from([1, 2, 4]), SCORE),
        min_size=1,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_best_variant_is_chosen_on_validation_never_on_test_lengths(points, rng):
    """Whatever the test-length accuracies, the pick per encoding is the variant with the
    highest validation exact match."""

    def results(test_score):
        return [
            (
                make_config(position=p, heads=h, seed=i),
                {BEST_VAL_SEQ_ACC: v, BEST_VAL_NEXT_TOKEN_ACC: v}
                | {ID_SEQ_ACC: test_score(), OOD_SEQ_ACC: test_score()},
            )
            for i, (p, h, v) in enumerate(points)
        ]

    first, second = best_per_encoding(results(rng.random)), best_per_encoding(results(rng.random))
    assert {e: r["variant"] for e, r in first.items()} == {
        e: r["variant"] for e, r in second.items()
    }
    for encoding, row in first.items():
        vals = {}
        for p, h, v in points:
            if p == encoding:
                vals.setdefault(h, []).append(v)
        assert math.isclose(row[BEST_VAL_SEQ_ACC], max(fmean(v) for v in vals.values()))


def test_ui_of_a_study_not_in_the_store_lists_those_there(study, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", study["uri"])  # followed without --tracking-uri
    assert main(["ui", "--study", "nope", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnstudy: error: --study nope:") and "there: " in err
    assert "tiny-ui" in err and study["uri"] in err


@pytest.fixture
def ui(study):
    """`attnstudy ui` serving the tiny study's store; yields its port and the URL it printed."""
    port, log = free_port(), study["root"] / "ui.log"
    argv = [sys.executable, "-m", "attnstudy.cli", "ui", "--study", STUDY["name"]]
    argv += ["--tracking-uri", study["uri"], "--port", str(port)]
    server = subprocess.Popen(
        argv, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/health"), server, log, 90, "attnstudy ui")
        yield port, re.search(r"http://\S+", log.read_text()).group()
    finally:
        stop(server, signal.SIGTERM)


def test_ui_opens_on_the_study_runs_and_shows_every_trial_by_name(study, ui, tmp_path):
    (port, url), experiment = ui, study["experiment"].experiment_id
    assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs?")
    tags = MlflowClient(study["uri"]).get_experiment(experiment).tags
    assert EXPERIMENT_KIND.items() <= tags.items()
    names = sorted({r.info.run_name for r in study["trials"]})
    shots = Path(os.environ.get("ATTNSTUDY_SCREENSHOTS", tmp_path))
    with app_page(ensure("chromium", "chromium"), storage=ASSISTANT_CLOSED) as page:
        page.goto(url)
        text = page.text_showing(["Model training", "Sort: Run Name", *names], timeout=60)
        assert all(name in text for name in names), text
        page.screenshot(shots / "mlflow-runs.png")
        chart_by_length_per_encoding(page)
        page.screenshot(shots / "mlflow-charts.png")
    assert (shots / "mlflow-runs.png").stat().st_size > 10_000


def test_optuna_importances_of_the_trained_study_name_the_axes_it_varied(study):
    stores = make_stores(study["root"] / "runs", tracking_uri=study["uri"])
    frame = study_frame(load_study(study["root"] / "tiny-ui.yaml"), stores)
    table = importance_table(frame, axis_columns(frame))
    assert {row["axis"] for row in table.rows} == {"position", "seed"}  # lr: one finished
    assert all(row[ID_SEQ_ACC] != "–" for row in table.rows)


def test_optuna_dashboard_shows_each_axis_as_a_column(study, tmp_path):
    """optuna-dashboard's trial table over the study's Optuna store: the axes varied are
    parameter columns (issue 30); the README's screenshot comes from here."""
    port, log = free_port(), study["root"] / "dashboard.log"
    argv = [Path(sys.executable).with_name("optuna-dashboard"), study["optuna"]]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        argv, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    shots = Path(os.environ.get("ATTNSTUDY_SCREENSHOTS", tmp_path))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/dashboard"), server, log, 90, "optuna-dashboard")
        with app_page(ensure("chromium", "chromium"), size=(1400, 700)) as page:
            page.goto(f"{base}/dashboard/studies/1/trials")
            axes = ["position", "seed", "lr"]
            text = page.text_showing([STUDY["name"], *axes, "rope"], timeout=60)
            assert all(axis in text for axis in axes), text
            page.screenshot(shots / "optuna-trials.png")
    finally:
        stop(server, signal.SIGTERM)
    assert (shots / "optuna-trials.png").stat().st_size > 10_000


def chart_by_length_per_encoding(page) -> None:
    """The README's clicks: chart view, charts of `eval_`, group by the tag `encoding`."""
    page.click(css="label:has(input[value=CHART])")
    page.type_into("Search metric charts", "eval_", timeout=60)
    text = page.text_showing([EVAL_SEQ_ACC, EVAL_TOKEN_ACC, "Step"], timeout=60)
    assert "Step" in text, text
    page.click(text="Group by")
    assert "encoding_family" in page.text_showing(["encoding_family"], timeout=30)
    page.click(text="encoding")
    legend = [f"{e} ({m})" for e in ("none", "rope") for m in (EVAL_SEQ_ACC, EVAL_TOKEN_ACC)]
    text = page.text_showing(["Group by: encoding", *legend], timeout=60)
    assert all(line in text for line in legend), text
