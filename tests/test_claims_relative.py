"""Tests of the rules of the relative-vs-absolute claims C11 (relations) and C12 (cost):
which encodings each side pools, and what each reads and leaves out. C10 (long range) has its
four verdicts in test_claims_registry."""

from claim_frames import BUILDERS, ENOUGH, c12, check, effects, make_runs, verdict

from attnstudy.analysis.rules import relative_vs_absolute
from attnstudy.schema import N_PARAMS


def test_relative_pools_only_shift_invariant_combinations():
    runs = make_runs(
        *[{"score": "additive", "position": p, "seed": s} for p in ("rope", "t5", "sinusoidal")
          for s in range(ENOUGH)]
    )  # fmt: skip
    labels = relative_vs_absolute(runs).fillna("-").tolist()
    assert labels == ["-"] * ENOUGH + ["a"] * ENOUGH + ["b"] * ENOUGH  # additive rope: no
    assert "not shift-invariant" in check("C11", runs)[1].evidence


def test_an_unknown_encoding_is_in_neither_family():
    runs = make_runs({"position": "fire"}, {"position": "t5"})
    assert relative_vs_absolute(runs).fillna("-").tolist() == ["-", "a"]


def test_c12_parameters_are_shown_but_do_not_decide():
    runs = c12(effects(0.0, ENOUGH, alternate=True))[0]
    runs.loc[runs["position"] == "t5", N_PARAMS] = 5000
    v, finding = check("C12", runs)
    assert v == "no meaningful difference" and N_PARAMS in finding.evidence


def test_runs_declared_unsolvable_count_for_c6_only():
    runs = BUILDERS["C11"](effects(0.2, ENOUGH))[0]
    assert check("C11", runs.assign(solvable=True))[0] == "supported"
    runs["solvable"] = runs["position"] != "sinusoidal"
    assert verdict("C11", runs).verdict == "inconclusive"  # no absolute side left
