"""Where the analysis (attnstudy.analysis.load) reads per-position accuracy from: a run's
logged table, else the metrics of runs from before it."""

import json

import pandas as pd
import pytest

from attnstudy.analysis import load
from attnstudy.evaluate import position_metric
from attnstudy.schema import POSITION_TABLE


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
