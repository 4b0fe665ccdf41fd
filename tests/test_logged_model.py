"""What MLflow users get, on hand-built inputs (the tiny study in test_ui checks the logged
runs): the model a study logs answers as the trained model predicts, the seed that stands
for a variant, and where the analysis reads per-position accuracy from."""

import json

import pandas as pd
import pytest
import torch
from builders import TINY_MODEL

from attnstudy.analysis import load
from attnstudy.archs import build_model
from attnstudy.evaluate import POSITION_SEED, position_metric
from attnstudy.logged_model import GreedyAnswer, example_length
from attnstudy.registries import make_config
from attnstudy.schema import BEST_VAL_NEXT_TOKEN_ACC, BEST_VAL_SEQ_ACC, POSITION_TABLE
from attnstudy.tasks import build_task
from attnstudy.tracking import best_per_encoding


@pytest.mark.parametrize(
    "task, arch, position",
    [
        ("copy", "decoder", "rope"),
        ("addition", "encoder-decoder", "learned"),  # input 2n + 1 tokens, target n + 1
        ("duplicate", "encoder", "learned"),  # target 2n tokens, no end token
        ("reverse", "rnn", "none"),
    ],
)
def test_the_logged_model_answers_every_length_as_the_model_predicts(task, arch, position):
    # one layer; trained on lengths 1 to 4 and evaluated up to 8, so that the lengths 1, 4
    # and 7 answered below lie inside, at the end of and past the trained ones
    size = TINY_MODEL | dict(n_layers=1, train_max_len=4, eval_max_len=8)
    cfg = make_config(task=task, arch=arch, position=position, **size)
    built = build_task(task, cfg.eval_max_len)
    model = build_model(cfg, built).eval()
    answer = GreedyAnswer(model, built)
    for n in (1, 4, 7):
        batch = built.sample(torch.full((3,), n), torch.Generator().manual_seed(n))
        expected = model.predict(batch, torch.Generator().manual_seed(POSITION_SEED))
        width = built.target_len(n) + model.emits_eos
        assert expected.shape == (3, width)
        assert torch.equal(answer(batch.inputs), expected)


def test_an_input_no_example_has_is_refused():
    addition = build_task("addition", 8)  # inputs of 2n + 1 tokens
    assert example_length(addition, 9) == 4
    with pytest.raises(ValueError, match="no addition example has an input of 8 tokens"):
        example_length(addition, 8)


def summary(val: float) -> dict[str, float]:
    return {BEST_VAL_SEQ_ACC: val, BEST_VAL_NEXT_TOKEN_ACC: val}


def test_the_seed_with_the_best_validation_stands_for_its_variant_lowest_on_ties():
    rope = [make_config(position="rope", seed=s) for s in range(3)]
    best = best_per_encoding([(rope[0], summary(0.5)), (rope[1], summary(0.9))])
    assert best["rope"]["selected"] == (rope[1], summary(0.9))
    tied = best_per_encoding([(rope[2], summary(0.7)), (rope[1], summary(0.7))])
    assert tied["rope"]["selected"][0].seed == 1


@pytest.mark.parametrize(
    "tag, listed",
    [
        (None, False),
        ("", False),
        (json.dumps([{"path": "other.json", "type": "table"}]), False),
        (json.dumps([{"path": "x.json", "type": "table"}, {"path": POSITION_TABLE}]), True),
    ],
)
def test_a_run_is_read_from_its_table_only_when_it_logged_one(tag, listed):
    assert load._lists_position_table(tag) is listed


def test_runs_with_a_table_and_runs_from_before_it_make_one_positions_frame():
    config = pd.DataFrame({"run_id": ["new", "old"], "task": ["copy", "copy"]})
    rows = [
        {"split": "id", "length": 2, "target_pos": 1, "token_acc": 0.5},
        {"split": "ood", "length": None, "target_pos": 0, "token_acc": 0.25},
    ]
    table = pd.DataFrame(rows).assign(run_id="new")
    packed = pd.DataFrame(
        [("old", *position_metric(r), r["token_acc"]) for r in rows],
        columns=["run_id", "key", "step", "value"],
    )
    frame = load._all_positions(table, packed, config)
    assert len(frame) == 4 and set(frame["run_id"]) == {"new", "old"}
    for run_id in ("new", "old"):
        mine = frame[frame["run_id"] == run_id].reset_index(drop=True)
        assert mine[["split", "target_pos", "token_acc"]].to_dict("records") == [
            {k: r[k] for k in ("split", "target_pos", "token_acc")} for r in rows
        ]
        assert mine["length"].iloc[0] == 2 and mine["length"].isna().iloc[1]
