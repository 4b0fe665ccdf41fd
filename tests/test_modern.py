"""The length-aware variants table (`analysis.modern`): each sigmoid, ssmax, FIRE or CoPE
variant beside the classic ones it ran with, extrapolation (exact match over L < length ≤ 2L)
over competent runs only."""

from __future__ import annotations

from frames import modern_runs

from attnstudy.analysis.modern import modern_table
from attnstudy.schema import ID_SEQ_ACC, ID_SEQ_ACC_AT_MAX, NEAR_OOD_SEQ_ACC

OOD = "OOD exact match (L, 2L] (competent)"  # near_ood_seq_acc, named with its range


def test_modern_table_sets_each_length_aware_variant_beside_the_classic_ones():
    """Only the setting where a length-aware variant ran (2 heads, Transformers), each
    (task, normaliser, encoding) with its seed CI, in registry order, the length-aware part
    named by the classes' `modern` fact."""
    table = modern_table(modern_runs())
    got = [(r["normaliser (score)"], r["encoding"], r["length-aware"]) for r in table.rows]
    assert got == [
        ("scaled_dot", "none", "–"),
        ("scaled_dot", "rope", "–"),
        ("scaled_dot", "fire", "encoding"),
        ("sigmoid", "rope", "normaliser"),
    ]
    rope = table.rows[1]
    assert rope[OOD].startswith("0.250 [")  # up to 2L; the mean to the end would be 0.150
    assert rope["seeds: all (competent)"] == "2 (2)"
    assert rope["ID exact match"].startswith("1.000 [")
    assert "heads" not in table.columns  # one setting: nothing else varies


def test_modern_table_compares_extrapolation_only_over_runs_that_learned_the_training_lengths():
    """A seed below the competence bar counts in ID but not in OOD exact match."""
    runs = modern_runs()
    short = (runs["score"] == "sigmoid") & (runs["seed"] == 1)
    runs.loc[short, [ID_SEQ_ACC, ID_SEQ_ACC_AT_MAX, NEAR_OOD_SEQ_ACC]] = [0.5, 0.5, 0.9]
    sigmoid = modern_table(runs).rows[-1]
    assert sigmoid[OOD].startswith("0.400")  # seed 0 only
    assert sigmoid["ID exact match"].startswith("0.750 [")
    assert sigmoid["seeds: all (competent)"] == "2 (1)"


def test_modern_table_keeps_unknown_names_and_is_absent_without_a_modern_variant():
    runs = modern_runs()
    classic = runs[~runs["position"].isin(["fire"]) & (runs["score"] != "sigmoid")]
    assert modern_table(classic) is None
    diverged = runs.assign(status=runs["status"].where(~runs["position"].eq("fire"), "diverged"))
    assert modern_table(diverged[diverged["score"] != "sigmoid"]) is None  # nothing finished
    odd = runs.assign(score=runs["score"].replace("scaled_dot", "mystery"))
    names = [r["normaliser (score)"] for r in modern_table(odd).rows]
    assert names == ["sigmoid", "mystery", "mystery", "mystery"]  # unknown last, kept
