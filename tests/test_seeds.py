"""Tests of analysis.seeds: each seed is reduced to one value before a group is summarised,
and the summaries over seeds (mean, interval, n, max) come from one function."""

import numpy as np
import pandas as pd
import pytest
from frames import make_runs

from attnstudy.analysis.aggregate import bootstrap_ci
from attnstudy.analysis.seeds import describe, seed_summary, summary_table
from attnstudy.schema import OOD_SEQ_ACC


def test_describe_of_one_value_has_no_interval():
    summary = describe(pd.Series([0.3, np.nan]), "m")
    assert (summary["m_mean"], summary["m_n"], summary["m_max"]) == (0.3, 1, 0.3)
    assert np.isnan(summary["m_low"]) and np.isnan(summary["m_high"])


def test_describe_of_no_values_is_nan_with_n_zero():
    summary = describe(pd.Series([np.nan]), "m")
    assert summary["m_n"] == 0 and np.isnan(summary["m_mean"]) and np.isnan(summary["m_max"])


def test_describe_intervals_are_the_bootstrap_over_the_values():
    values = pd.Series([0.1, 0.5, 0.9, 0.3])
    summary = describe(values, "m")
    assert (summary["m_low"], summary["m_high"]) == bootstrap_ci(values)


def test_seed_summary_averages_each_seed_before_the_seeds():
    """Seed 0 ran two configurations (0.0 and 1.0), seed 1 one (0.2): the mean over seeds is
    (0.5 + 0.2) / 2, not the mean of the three runs."""
    runs = make_runs(
        {"seed": 0, "heads": 1, OOD_SEQ_ACC: 0.0},
        {"seed": 0, "heads": 2, OOD_SEQ_ACC: 1.0},
        {"seed": 1, "heads": 1, OOD_SEQ_ACC: 0.2},
    )
    row = seed_summary(runs, ["task"], [OOD_SEQ_ACC]).iloc[0]
    assert row[f"{OOD_SEQ_ACC}_mean"] == pytest.approx(0.35)
    assert (row[f"{OOD_SEQ_ACC}_n"], row[f"{OOD_SEQ_ACC}_max"]) == (2, 0.5)


def test_summary_table_counts_diverged_and_excludes_them_from_means():
    runs = make_runs(
        {"seed": 0, OOD_SEQ_ACC: 0.2},
        {"seed": 1, OOD_SEQ_ACC: 0.6},
        {"seed": 2, "status": "diverged", OOD_SEQ_ACC: np.nan},
        {"seed": 3, "status": "failed", OOD_SEQ_ACC: np.nan},
    )
    row = summary_table(runs, ["task"], [OOD_SEQ_ACC]).iloc[0]
    assert (row["n_seeds"], row["n_diverged"], row["n_failed"]) == (2, 1, 1)
    assert row["ood_seq_acc_mean"] == pytest.approx(0.4)
    assert row["ood_seq_acc_max"] == pytest.approx(0.6)
    assert 0.2 <= row["ood_seq_acc_low"] <= 0.4 <= row["ood_seq_acc_high"] <= 0.6


def test_summary_table_keeps_a_group_without_a_finished_run():
    runs = make_runs(
        {"position": "rope"},
        {"position": "alibi"},
        {"position": "alibi", "seed": 1},
        {"position": "t5", "status": "diverged", OOD_SEQ_ACC: np.nan},
    )
    table = summary_table(runs, ["task", "position"], [OOD_SEQ_ACC]).set_index("position")
    assert table["n_seeds"].to_dict() == {"alibi": 2, "rope": 1, "t5": 0}
    assert np.isnan(table.loc["t5", f"{OOD_SEQ_ACC}_mean"])
