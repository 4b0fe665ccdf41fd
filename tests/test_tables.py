"""The report's tables: per-axis tables read what a variant is from its class, never from a
list of names, and keep a variant no registry knows (ordered last); seeds are averaged
before configurations; extrapolation counts competent runs only; completeness lists what
is missing."""

import numpy as np
import pandas as pd
import pytest
from frames import BASE_RUN

from attnstudy.analysis.tables import (
    axis_table,
    completeness,
    configuration_table,
    fmt_ci,
    statistics_tables,
)
from attnstudy.archs import ARCHS
from attnstudy.schema import ID_SEQ_ACC, ID_SEQ_ACC_AT_MAX, NEAR_OOD_SEQ_ACC, OOD_SEQ_ACC

NEAR_OOD = NEAR_OOD_SEQ_ACC  # the claims' primary OOD metric, over L < length ≤ 2L
NEAR = "OOD exact match (L, 2L]"  # its column, named with its range


def runs(**variants) -> pd.DataFrame:
    """One run per (run id → settings) over BASE_RUN."""
    return pd.DataFrame([BASE_RUN | {"run_id": k} | v for k, v in variants.items()])


@pytest.mark.parametrize("arch", list(ARCHS))
def test_an_axis_table_keeps_an_architecture_only_where_the_axis_changes_it(arch):
    cls = ARCHS[arch]
    table = runs(a=dict(arch=arch, score="dot", heads=2, position="none"))
    shown = {
        axis: bool(axis_table(table, axis).rows) for axis in ("position", "score", "heads", "arch")
    }
    assert shown == {
        "position": cls.uses_positions,
        "score": cls.uses_attention,
        "heads": cls.uses_attention,
        "arch": True,
    }


@pytest.mark.parametrize("axis, unknown", [("position", "fancy"), ("score", "aaa"), ("arch", "a")])
def test_an_unknown_variant_is_kept_and_ordered_last(axis, unknown):
    table = runs(a={axis: unknown}, b={}, c={axis: BASE_RUN[axis]})
    levels = [row[next(iter(row))] for row in axis_table(table, axis).rows]
    assert levels == [BASE_RUN[axis], unknown]


def test_one_seed_prints_no_interval():
    runs = pd.DataFrame([BASE_RUN | {"run_id": "a", NEAR_OOD_SEQ_ACC: 0.158}])
    table = axis_table(runs, "position")
    assert table.rows[0][NEAR] == "0.158 (n = 1)"
    assert table.rows[0]["n (seeds)"] == 1
    rope = BASE_RUN | {"run_id": "b", "position": "alibi", NEAR_OOD_SEQ_ACC: 0.5}
    pairwise = statistics_tables(pd.DataFrame([BASE_RUN | {"run_id": "a"}, rope]))[0]
    assert pairwise.rows[0]["A − B [95% CI]"].endswith("(n = 1)")
    assert fmt_ci(0.158, 0.158, 0.158, n=1) == "0.158 (n = 1)"
    assert fmt_ci(0.5, 0.4, 0.6, n=3) == "0.500 [0.400, 0.600]"


def test_axis_table_averages_each_seed_over_the_other_axes_first():
    ood = {("dot", 0): 0.2, ("cosine", 0): 0.4, ("dot", 1): 0.6}  # seed means 0.3 and 0.6
    runs = pd.DataFrame(
        [
            BASE_RUN | {"run_id": f"{s}{seed}", "score": s, "seed": seed, NEAR_OOD: v}
            for (s, seed), v in ood.items()
        ]
        + [BASE_RUN | {"run_id": "x", "status": "diverged", NEAR_OOD: np.nan}]
    )
    (row,) = axis_table(runs, "position").rows
    assert row[NEAR].startswith("0.450 [")  # not the run mean 0.400
    assert (row["n (seeds)"], row["runs"], row["left out"]) == (2, 3, 1)
    scores = [r["score function"] for r in axis_table(runs, "score").rows]
    assert scores == ["dot", "scaled_dot", "cosine"]  # registry order


def test_axis_table_counts_extrapolation_only_over_runs_that_learned_the_training_lengths():
    """A run below the competence bar counts in ID exact match, not in OOD exact match or
    extrapolation length; the seeds column says how many seeds were competent."""
    runs = pd.DataFrame(
        [
            BASE_RUN | {"run_id": "a", "seed": 0, NEAR_OOD: 0.2},
            BASE_RUN
            | {"run_id": "b", "seed": 1, ID_SEQ_ACC: 0.5, ID_SEQ_ACC_AT_MAX: 0.5}
            | {NEAR_OOD: 0.9},
        ]
    )
    (row,) = axis_table(runs, "position").rows
    assert row[NEAR] == "0.200 (n = 1)"
    assert row["ID exact match"].startswith("0.750 [")
    assert (row["n (seeds)"], row["runs"]) == (1, 2)


def test_axis_and_pairwise_tables_show_the_claims_ood_metric_not_the_mean_to_the_end():
    """Where the two OOD means differ, the tables show exact match over L < length ≤ 2L
    (what the claims decide on), never the mean over every length beyond L."""
    runs = pd.DataFrame(
        [
            BASE_RUN
            | {"run_id": f"{p}{seed}", "position": p, "seed": seed}
            | {NEAR_OOD: near + seed / 100, OOD_SEQ_ACC: near / 4}
            for seed in range(3)
            for p, near in (("rope", 0.4), ("alibi", 0.8))
        ]
    )
    rows = axis_table(runs, "position").rows
    assert [(r["positional encoding"], r[NEAR][:5]) for r in rows] == [
        ("rope", "0.410"),
        ("alibi", "0.810"),
    ]
    assert "OOD exact match (every length > L)" not in axis_table(runs, "position").columns
    tables = {t.key: t for t in statistics_tables(runs)}
    assert "pairwise_position_ood_seq_acc" not in tables
    (pair,) = tables["pairwise_position_near_ood_seq_acc"].rows
    assert {pair["A"]: pair["mean A"], pair["B"]: pair["mean B"]} == {
        "rope": "0.410",
        "alibi": "0.810",
    }
    assert tables["pairwise_position_near_ood_seq_acc"].title.endswith(NEAR)


def test_configuration_table_shows_ood_exact_match_up_to_2l_beside_the_mean_to_the_end():
    """Each configuration's row has the claims' primary range, mean [CI] and max over
    seeds, and keeps the mean over every longer length as a column of its own."""
    rows = [
        BASE_RUN
        | {"run_id": f"{p}{seed}", "position": p, "seed": seed}
        | {NEAR_OOD: near + seed / 10, OOD_SEQ_ACC: near / 4}
        for seed in range(2)
        for p, near in (("rope", 0.4), ("alibi", 0.8))
    ]
    table = configuration_table(pd.DataFrame(rows))
    got = {r["position"]: (r[NEAR][:6], r[f"{NEAR} max"]) for r in table.rows}
    assert got == {"alibi": ("0.850 ", "0.900"), "rope": ("0.450 ", "0.500")}
    every = "OOD exact match (every length > L)"
    assert [r[every][:5] for r in table.rows] == ["0.200", "0.100"]
    assert table.columns.index(NEAR) < table.columns.index(every)


def test_pairwise_ood_statistics_pair_only_competent_runs():
    rows = [
        BASE_RUN | {"run_id": f"{p}{seed}", "position": p, "seed": seed, NEAR_OOD: acc}
        for seed in range(4)
        for p, acc in (("rope", 0.1), ("alibi", 0.3))
    ]
    rows[0] |= {ID_SEQ_ACC_AT_MAX: 0.2, NEAR_OOD: 0.9}  # rope seed 0 never learned
    tables = {t.key: t for t in statistics_tables(pd.DataFrame(rows))}
    (ood,) = tables["pairwise_position_near_ood_seq_acc"].rows
    (iid,) = tables["pairwise_position_id_seq_acc"].rows
    assert (ood["n"], iid["n"]) == ("3 seeds (4 + 3 runs)", "4 seeds (4 + 4 runs)")


def test_pairwise_rows_say_when_their_test_cannot_reject_whatever_the_data():
    rows = [
        BASE_RUN | {"run_id": f"{p}{seed}", "position": p, "seed": seed, NEAR_OOD: acc}
        for seed in range(5)
        for p, acc in (("rope", 0.1 + seed / 100), ("alibi", 0.5))
    ]
    tables = {t.key: t for t in statistics_tables(pd.DataFrame(rows))}
    (five,) = tables["pairwise_position_near_ood_seq_acc"].rows
    assert five["min p"] == "0.0625 (cannot reject)"
    more = [r | {"run_id": f"{r['run_id']}x", "seed": r["seed"] + 5} for r in rows]
    tables = {t.key: t for t in statistics_tables(pd.DataFrame(rows + more))}
    (ten,) = tables["pairwise_position_near_ood_seq_acc"].rows
    assert ten["min p"] == "0.0020"


def test_missing_grid_points_are_listed_when_the_grid_is_a_full_product():
    keys = [f"heads={h},position={p}" for h in (1, 2) for p in ("learned", "rope")]
    runs = pd.DataFrame(
        {
            "grid_key": keys[:3],
            "status": ["ok", "ok", "diverged"],
            "reason": ["", "", "nan loss"],
            "run_id": ["a", "b", "c"],
        }
    )
    attempts = pd.DataFrame(
        {
            "grid_key": keys,
            "status": ["ok", "ok", "diverged", "killed"],
            "run_id": ["a", "b", "c", "d"],
        }
    )
    done = completeness(runs, attempts, grid_size=4, grid=None)
    assert done["missing"] == [keys[3]]
    assert [r["status"] for r in done["unfinished"].rows] == ["killed"]
    assert [r["grid point"] for r in done["bad"].rows] == [keys[2]]
    assert completeness(runs, attempts, grid_size=6, grid=None)["missing"] is None


def test_an_interval_is_never_split_across_lines_in_the_report():
    from attnstudy.analysis.report import unbroken

    assert unbroken(fmt_ci(0.5, 0.4, 0.6)) == "0.500 [0.400,\u00a00.600]"
    assert unbroken("+0.010 [-0.002, +0.030]") == "+0.010 [-0.002,\u00a0+0.030]"
    assert unbroken("C4 and 0.5") == "C4 and 0.5"  # text without an interval is left alone
