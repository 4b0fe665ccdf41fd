"""`attnstudy bench`: the quick run writes its table (JSON, Markdown) and logs it to MLflow;
the measuring parts measure what they claim. No timing assertions."""

import itertools
import json

import pytest
import torch
from mlflow import MlflowClient

from attnstudy.archs import build_model
from attnstudy.bench.decoding import predict_recomputing
from attnstudy.bench.memory import BASELINE, memory_rows, peak_bytes
from attnstudy.bench.rows import row
from attnstudy.bench.shapes import make_plan
from attnstudy.bench.throughput import study_file
from attnstudy.bench.training import contenders
from attnstudy.cli import main
from attnstudy.positions import POSITIONS
from attnstudy.registries import make_config
from attnstudy.scores import SCORES
from attnstudy.study_config import load_study
from attnstudy.tasks import build_task

SECTIONS = {str(n) for n in range(1, 9)}


def test_quick_bench_writes_json_markdown_and_one_mlflow_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["bench", "--quick", "--out", "out", "--tracking-uri", uri]) == 0
    table = json.loads((tmp_path / "out/bench.json").read_text())
    assert {r["section"][0] for r in table["rows"]} == SECTIONS
    assert [r["note"] for r in table["rows"] if r["what"] == "section failed"] == []
    assert table["meta"]["threads"] == 1 and table["meta"]["machine"]["cores"] >= 1
    text = (tmp_path / "out/bench.md").read_text()
    assert text.startswith("# Benchmarks") and "| what | value | reference |" in text
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bench").experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"bench.json", "bench.md"}
    assert (tmp_path / "mlartifacts/bench").is_dir()


@pytest.mark.parametrize("position", POSITIONS)
def test_recomputing_baseline_predicts_what_the_cached_decoder_does(position):
    cfg = make_config(position=position, d_model=16, heads=2, n_layers=2, train_max_len=4)
    task = build_task(cfg.task, cfg.eval_max_len)
    model = build_model(cfg, task).eval()
    gen = torch.Generator().manual_seed(0)
    batch = task.sample(torch.full((3,), 9), gen)
    with torch.no_grad():
        cached = model.predict(batch, torch.Generator())
    assert torch.equal(predict_recomputing(model, batch, torch.Generator()), cached)


def test_peak_bytes_is_the_most_tensor_storage_alive_at_once():
    def two_then_one():
        a = torch.empty(1_000_000, dtype=torch.uint8)
        b = torch.empty(2_000_000, dtype=torch.uint8)
        del a, b
        return torch.empty(1_500_000, dtype=torch.uint8)

    assert 3_000_000 <= peak_bytes(two_then_one) < 3_000_000 + 4096


def test_row_ratio_and_goal():
    slow = row("1. x", "slow", 1.2, "ms", 1.0, ("<=", 1.1))
    assert slow.ratio == pytest.approx(1.2) and slow.met is False and slow.goal == "<= 1.1"
    assert row("1. x", "info", 3.0, "ms", 2.0).met is None


def test_throughput_study_is_a_valid_study_of_identical_trials(tmp_path):
    plan = make_plan(quick=True)
    points = load_study(study_file(plan, tmp_path)).points()
    assert len(points) == plan.throughput_trials
    assert len({p.config.hash() for p in points}) == plan.throughput_trials  # seeds differ
    assert len({p.config.score for p in points}) == 1


def test_memory_section_has_rows_for_every_score_and_every_encoding():
    """Each score without positions and each encoding with scaled_dot, a new variant by
    being registered; the baseline's own rows have ratio 1."""
    rows = memory_rows(make_plan(quick=True))
    assert {r.params["score"] for r in rows} == set(SCORES)
    assert {r.params["position"] for r in rows} == set(POSITIONS)
    base = [r for r in rows if (r.params["score"], r.params["position"]) == BASELINE]
    assert len(base) == 2 and all(r.ratio == pytest.approx(1.0) for r in base)


def test_step_time_section_times_every_score_with_every_encoding():
    shape = make_plan(quick=True).study_shape
    steps = contenders(shape, build_task("copy", 4 * shape.train_max_len).vocab_size)
    ours = {tuple(key.split("/")[1:]) for key in steps if key.startswith("ours/")}
    assert ours == set(itertools.product(SCORES, POSITIONS))


@pytest.mark.parametrize("rounds", [1, 2, 3])
def test_section_8_runs_each_loop_equally_often_in_the_order_a_b_b_a(rounds):
    from attnstudy.bench.trials import BASELINE, NEW, trial_order

    order = trial_order(rounds)
    assert order.count(BASELINE) == order.count(NEW) == rounds
    assert order[:4] == [BASELINE, NEW, NEW, BASELINE][: 2 * rounds]
    # a drift linear in time falls on both loops alike over every two rounds
    slots = {loop: [i for i, x in enumerate(order) if x == loop] for loop in (BASELINE, NEW)}
    assert sum(slots[BASELINE][: 2 * (rounds // 2)]) == sum(slots[NEW][: 2 * (rounds // 2)])


def test_section_8_times_a_step_of_every_other_batching_against_padded():
    from attnstudy.bench.trials import STEP_BATCHINGS, step_rows

    rows = step_rows(make_plan(True))
    assert [r.params["batching"] for r in rows] == [b for b in STEP_BATCHINGS if b != "padded"]
    assert all(r.unit == "ms/step" and r.value > 0 and r.reference > 0 for r in rows)
