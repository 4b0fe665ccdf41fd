"""Tests of the rules of the positional-encoding claims C6 (order needs an encoding), C7
(sinusoidal extrapolates) and C8 (learned adapts): what each reads and leaves out. C9 (learned
fails beyond training) has its four verdicts in test_claims_registry."""

import numpy as np
import pandas as pd
import pytest
from claim_frames import BUILDERS, ENOUGH, c7, check, effects, make_runs

from attnstudy.schema import (
    ID_SEQ_ACC,
    ID_SEQ_ACC_AT_MAX,
    NEAR_OOD_SEQ_ACC,
    STEPS_TO_95,
    STEPS_TRAINED,
)


def test_c6_decides_in_the_decoder_and_shows_the_encoder():
    decoder = BUILDERS["C6"](effects(0.0, ENOUGH, alternate=True))[0]
    encoder = decoder.assign(arch="encoder")
    encoder.loc[encoder["position"] == "none", ID_SEQ_ACC] = 0.1
    runs = pd.concat([decoder, encoder], ignore_index=True)
    runs["run_id"] = [f"r{i}" for i in range(len(runs))]
    v, finding = check("C6", runs)
    assert v == "no meaningful difference" and "bidirectional encoder" in finding.evidence


def test_in_distribution_claims_keep_runs_that_did_not_learn():
    runs = BUILDERS["C6"](effects(-0.3, ENOUGH))[0].assign(id_seq_acc_at_max=0.2)
    assert check("C6", runs)[1].effect.n_kept == 3 * ENOUGH


def test_ood_comparisons_drop_runs_that_miss_the_longest_training_length_and_their_partners():
    runs = c7(effects(0.1, ENOUGH))[0]
    learned = runs.index[runs["position"] == "learned"]
    runs.loc[learned[0], ID_SEQ_ACC_AT_MAX] = 0.83  # a mean over 1..L could still pass
    runs.loc[learned[0], ID_SEQ_ACC] = 0.96
    effect = check("C7", runs)[1].effect
    assert (effect.n_runs, effect.n_kept, effect.n_incompetent, effect.n_unmatched) == (
        12,
        10,
        1,
        1,
    )
    assert "10 of 12 runs kept" in effect.exclusions() and "longest training length" in (
        effect.exclusions()
    )


def test_ood_claims_read_twice_the_training_length_from_the_lengths_where_not_logged():
    """Sinusoidal ahead by 0.1 over lengths 9-16 and level beyond: supported from (L, 2L]
    alone, where a mean to 4L would halve the effect."""
    runs = c7(effects(0.1, ENOUGH))[0].drop(columns=NEAR_OOD_SEQ_ACC)
    ahead = np.where(runs["position"] == "sinusoidal", 0.4, 0.3)
    rows = [
        {"run_id": run, "length": n, "train_max_len": 8}
        | {"seq_acc": 1.0 if n <= 8 else acc if n <= 16 else 0.0}
        for run, acc in zip(runs["run_id"], ahead, strict=True)
        for n in range(1, 33)
    ]
    v, finding = check("C7", runs, pd.DataFrame(rows))
    assert v == "supported" and finding.effect.estimate == pytest.approx(0.1)
    assert "at exact match 0.5" in finding.evidence


def test_c7_ignores_randomized_runs():
    runs = c7(effects(0.1, ENOUGH))[0]
    assert check("C7", runs.assign(randomized=True))[0] == "inconclusive"


@pytest.mark.parametrize(
    ("learned", "sinusoidal", "score"),
    [
        ((300.0, 1000), (None, 1000), -1),  # learned reached, sinusoidal never: learned first
        ((None, 1000), (500.0, 1000), 1),  # learned never reached by 1000, sinusoidal at 500
        ((None, 300), (500.0, 1000), 0),  # learned censored at 300: cannot tell
        ((None, 1000), (None, 1000), 0),  # neither reached
    ],
)
def test_c8_treats_a_run_that_never_reached_95_percent_as_censored(learned, sinusoidal, score):
    rows = [
        {"position": p, "seed": s, STEPS_TO_95: reached, STEPS_TRAINED: trained}
        for s in range(ENOUGH)
        for p, (reached, trained) in (("learned", learned), ("sinusoidal", sinusoidal))
    ]
    effect = check("C8", make_runs(*rows))[1].effect
    assert effect.estimate == score
