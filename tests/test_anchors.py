"""Our runs set beside published numbers (`analysis.anchors`): each paper's block matches
only runs of its setting, and counts only runs that learned the training lengths."""

from __future__ import annotations

import pandas as pd

from analysis.anchors import KAZEMNEJAD_OOD, deletang, kazemnejad


def synthetic_runs(**fixed) -> pd.DataFrame:
    """Finished runs of every Kazemnejad encoding on copy, three seeds each."""
    base = {"status": "ok", "arch": "decoder", "score": "scaled_dot", "randomized": False}
    base |= {"heads": 4, "d_model": 64, "n_layers": 2, "lr": 1e-3, "steps": 3000}
    base |= {"train_max_len": 20, "eval_max_len": 40, "weight_decay": 0.01, "batch_size": 64}
    rows = [
        base
        | fixed
        | {"task": "copy", "position": p, "seed": s, "run_id": f"{p}{s}"}
        | {"ood_seq_acc": 0.1 * i, "ood_token_acc": 0.5, "id_seq_acc": 1.0}
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
    runs.loc[runs["run_id"] == "t50", ["id_seq_acc", "ood_seq_acc"]] = [0.5, 0.9]
    copy = {r["encoding"]: r for r in kazemnejad(runs)["rows"] if r["task"] == "copy"}
    assert copy["t5"]["ours mean [95% CI]"].startswith("0.100 [")  # seeds 1 and 2 only
    assert copy["t5"]["seeds"] == 2 and copy["t5"]["ours ID"] == "0.833"
    runs.loc[runs["position"] == "none", "id_seq_acc"] = 0.8
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
    failed = shuffled.assign(id_seq_acc=0.5)  # did not learn the training lengths
    assert not deletang(pd.concat([runs, failed], ignore_index=True))["matched"]
