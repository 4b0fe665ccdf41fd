"""Our runs set beside published numbers (`analysis.anchors`): each paper's block matches
only runs of its setting, and counts only runs that learned the training lengths."""

from __future__ import annotations

import pandas as pd

from attnstudy.analysis.anchors import (
    DELETANG_STATISTIC,
    KAZEMNEJAD_OOD,
    RUOSS_STATISTIC,
    deletang,
    kazemnejad,
    score_functions,
)
from attnstudy.schema import ID_SEQ_ACC, ID_SEQ_ACC_AT_MAX, OOD_SEQ_ACC, OOD_TOKEN_ACC


def synthetic_runs(**fixed) -> pd.DataFrame:
    """Finished runs of every Kazemnejad encoding on copy, three seeds each."""
    base = {"status": "ok", "arch": "decoder", "score": "scaled_dot", "randomized": False}
    base |= {"heads": 4, "d_model": 64, "n_layers": 2, "lr": 1e-3, "steps": 3000}
    base |= {"train_max_len": 20, "eval_max_len": 40, "weight_decay": 0.01, "batch_size": 64}
    rows = [
        base
        | fixed
        | {"task": "copy", "position": p, "seed": s, "run_id": f"{p}{s}"}
        | {OOD_SEQ_ACC: 0.1 * i, OOD_TOKEN_ACC: 0.5, ID_SEQ_ACC: 1.0}
        | {ID_SEQ_ACC_AT_MAX: 1.0}
        for i, p in enumerate(KAZEMNEJAD_OOD["copy"])
        for s in range(3)
    ]
    return pd.DataFrame(rows)


def test_kazemnejad_setting_puts_our_means_beside_theirs():
    block = kazemnejad(synthetic_runs())
    assert block["matched"]
    copy = {r["encoding"]: r for r in block["rows"] if r["task"] == "copy"}
    assert copy["t5"]["theirs (mean of 3)"] == "0.420"
    assert copy["t5"]["ours mean [95% CI]"].startswith("0.100 [")
    assert copy["t5"]["seeds"] == 3
    assert copy["t5"]["ours ID"] == "1.000"  # whether the training lengths were learnt
    reverse = {r["encoding"]: r for r in block["rows"] if r["task"] == "reverse"}
    assert reverse["none"]["ours ID"] == "–"  # reverse was not run
    assert "Setup differences" in block["note"] and "lr 0.001" in block["note"]


def test_kazemnejad_ours_counts_only_runs_that_learned_the_training_lengths():
    runs = synthetic_runs()
    runs.loc[runs["run_id"] == "t50", [ID_SEQ_ACC, ID_SEQ_ACC_AT_MAX, OOD_SEQ_ACC]] = [
        0.5,
        0.5,
        0.9,
    ]
    copy = {r["encoding"]: r for r in kazemnejad(runs)["rows"] if r["task"] == "copy"}
    assert copy["t5"]["ours mean [95% CI]"].startswith("0.100 [")  # seeds 1 and 2 only
    assert copy["t5"]["seeds"] == 2 and copy["t5"]["ours ID"] == "0.833"
    runs.loc[runs["position"] == "none", [ID_SEQ_ACC, ID_SEQ_ACC_AT_MAX]] = 0.8
    copy = {r["encoding"]: r for r in kazemnejad(runs)["rows"] if r["task"] == "copy"}
    assert copy["none"]["ours mean [95% CI]"] == "no competent run"
    assert copy["none"]["ours ID"] == "0.800"


def test_other_settings_show_published_numbers_and_name_the_preset():
    block = kazemnejad(synthetic_runs(train_max_len=16, eval_max_len=64))
    assert not block["matched"]
    assert "replicate-kazemnejad" in block["note"]
    assert all("ours mean [95% CI]" not in row for row in block["rows"])


def test_deletang_setting_reports_the_randomization_gain_beside_ruoss():
    runs = synthetic_runs(arch="encoder", train_max_len=8, eval_max_len=32)
    shuffled = runs.assign(randomized=True, ood_token_acc=0.7)
    block = deletang(pd.concat([runs, shuffled], ignore_index=True))
    gain = block["rows"][-1]
    assert block["matched"]
    assert gain["ours mean [95% CI]"] == "20.0 [20.0, 20.0]"
    assert gain["theirs"].startswith("+12.0")


def test_deletang_setting_pairs_only_competent_runs_of_configurations_run_both_ways():
    runs = synthetic_runs(arch="encoder", train_max_len=8, eval_max_len=32)
    shuffled = runs.assign(randomized=True, ood_token_acc=0.7)
    assert not deletang(runs)["matched"]  # no randomized counterpart: not the Ruoss setting
    failed = shuffled.assign(id_seq_acc_at_max=0.5)  # did not learn the training lengths
    assert not deletang(pd.concat([runs, failed], ignore_index=True))["matched"]


def test_score_functions_compare_only_configurations_run_with_several_scores_over_seeds():
    """Luong's ordering is set beside scores trained in the same configuration: a score's
    runs in another configuration (here scaled_dot in an encoder without positions, which
    cannot solve copy) stay out, and seeds, not runs, are counted."""
    base = {"status": "ok", "task": "copy", "arch": "decoder", "position": "rope"}
    base |= {"randomized": False, "heads": 2, "d_model": 32, "n_layers": 2}
    rows = [
        base | {"score": s, "seed": seed, "run_id": f"{s}{seed}", ID_SEQ_ACC: acc}
        for s, acc in (("dot", 0.9), ("general", 0.8), ("scaled_dot", 1.0))
        for seed in range(3)
    ]
    rows += [
        base
        | {"arch": "encoder", "position": "none", "score": "scaled_dot", "seed": seed}
        | {"run_id": f"enc{seed}", ID_SEQ_ACC_AT_MAX: 0.1}
        for seed in range(3)
    ]
    rows += [  # a second task doubles the runs of each seed, not the seeds
        row | {"task": "reverse", "run_id": row["run_id"] + "r"} for row in rows[:9]
    ]
    table = {r["score"]: r for r in score_functions(pd.DataFrame(rows))["rows"]}
    assert table["scaled_dot"]["ours mean [95% CI]"].startswith("1.000")
    assert table["scaled_dot"]["seeds"] == 3 and table["dot"]["seeds"] == 3
    assert table["general"]["ours mean [95% CI]"].startswith("0.800")
    assert table["additive"]["ours mean [95% CI]"] == "not run"


def test_kazemnejad_counts_seeds_not_runs_when_a_setting_ran_in_several_configurations():
    runs = synthetic_runs()
    two_heads = runs.assign(heads=2, run_id=runs["run_id"] + "h")
    copy = {
        r["encoding"]: r
        for r in kazemnejad(pd.concat([runs, two_heads]))["rows"]
        if r["task"] == "copy"
    }
    assert copy["t5"]["seeds"] == 3
    assert copy["t5"]["ours mean [95% CI]"].startswith("0.100 [")


def test_deletang_rows_count_seeds_not_runs():
    runs = synthetic_runs(arch="encoder", train_max_len=8, eval_max_len=32)
    runs = pd.concat([runs, runs.assign(heads=2, run_id=runs["run_id"] + "h")])
    shuffled = runs.assign(randomized=True, ood_token_acc=0.7)
    rows = deletang(pd.concat([runs, shuffled], ignore_index=True))["rows"][:-1]
    assert {row["seeds"] for row in rows} == {3}


def test_deletang_setting_computes_their_statistics_on_every_run_beside_ours():
    """Delétang et al. report the maximum over seeds and Ruoss et al. average the gain over
    every model: both over every run, learned or not, where ours counts competent runs."""
    runs = synthetic_runs(arch="encoder", train_max_len=8, eval_max_len=32)
    shuffled = runs.assign(randomized=True, ood_token_acc=0.7)
    failed = shuffled.iloc[:1].assign(
        id_seq_acc_at_max=0.5, ood_token_acc=0.95, seed=3, run_id="failed"
    )
    block = deletang(pd.concat([runs, shuffled, failed], ignore_index=True))
    rows = {(r["task"], r["encoding"], r["randomized"]): r for r in block["rows"][:-1]}
    first = rows["copy", "none", "True"]
    assert first["seeds"] == 3 and first["ours max"] == "0.700"  # the failed run left out
    assert first[DELETANG_STATISTIC] == "0.950"  # the maximum over every seed's run
    gain = block["rows"][-1]
    assert gain["ours mean [95% CI]"] == "20.0 [20.0, 20.0]"
    assert "train_max_len 8, eval_max_len 32" in block["note"]  # beside their 1..40, 41..500
    every_run = (0.7 * 15 + 0.95) / 16 - 0.5  # all randomized runs minus all plain ones
    assert gain[RUOSS_STATISTIC] == f"{100 * every_run:+.1f}"


def test_deletang_rows_say_a_configuration_ran_but_has_no_competent_pair():
    """A configuration run both ways whose randomized runs never learned the training
    lengths has no competent pair: its rows say so, not 'not run', beside their statistic."""
    runs = synthetic_runs(arch="encoder", train_max_len=8, eval_max_len=32)
    failed = runs.assign(randomized=True, id_seq_acc_at_max=0.5, ood_token_acc=0.3)
    rows = deletang(pd.concat([runs, failed], ignore_index=True))["rows"][:-1]
    assert {row["ours mean [95% CI]"] for row in rows} == {"no competent pair"}
    assert {row[DELETANG_STATISTIC] for row in rows} == {"0.500", "0.300"}
