"""Validation in one teacher-forced pass per length gives greedy decoding's exact match.

Greedy decoding follows the target as long as each next token is right, so it reproduces
the target (and EOS) exactly when every teacher-forced prediction is right. The tests
check that per example on partly trained models of every architecture, where some
examples pass and some fail, at lengths inside and beyond training."""

import pytest
import torch
from builders import PARTLY_TRAINED

from attnstudy.archs import ARCHS
from attnstudy.bench.trials import greedy_validation
from attnstudy.evaluate import POSITION_SEED, evaluate, examples, score_predictions, validate
from attnstudy.registries import make_config
from attnstudy.train import run

LENGTHS = {n: 48 for n in range(1, 13)}
CPU = torch.device("cpu")


def partly_trained(arch: str, position: str, randomized: bool = False):
    variant = dict(task="reverse", arch=arch, position=position, randomized=randomized)
    return run(make_config(**(PARTLY_TRAINED | variant)))


MODELS = [
    pytest.param((arch, "rope" if cls.uses_positions else "none", False), id=arch)
    for arch, cls in ARCHS.items()
] + [pytest.param(("decoder", "learned", True), id="decoder-randomized")]


@pytest.fixture(scope="module", params=MODELS)
def trained(request):
    return partly_trained(*request.param)


def test_every_teacher_forced_exact_match_is_greedys(trained):
    model, task = trained.model, trained.task
    model.eval()
    greedy_positions = torch.Generator().manual_seed(POSITION_SEED)
    forced_positions = torch.Generator().manual_seed(POSITION_SEED)
    passed = failed = 0
    for _, batch in examples(task, LENGTHS, seed=7, device=CPU):
        with torch.no_grad():
            predicted = model.predict(batch, greedy_positions)
            right, labelled = model.teacher_forced(batch, forced_positions)
        _, greedy_exact = score_predictions(predicted, batch.targets, model.emits_eos)
        assert torch.equal((right | ~labelled).all(dim=1), greedy_exact)
        passed += int(greedy_exact.sum())
        failed += int((~greedy_exact).sum())
    assert passed >= 20 and failed >= 20  # both outcomes tested


def test_validation_exact_match_is_the_mean_of_greedy_exact_match_over_lengths(trained):
    model, task = trained.model, trained.task
    greedy = evaluate(model, task, LENGTHS, 11, CPU)
    forced = validate(model, task, LENGTHS, 11, CPU)
    assert forced["val_seq_acc"] == pytest.approx(sum(r.seq_acc for r in greedy) / len(greedy))
    assert 0.0 < forced["val_next_token_acc"] < 1.0
    assert forced["val_next_token_acc"] >= forced["val_seq_acc"]  # a pass has every token


def test_training_selects_the_same_checkpoint_as_with_greedy_validation():
    """The teacher-forced pass is purely computational: the run it selects, and so every
    result, is bit-identical to the one greedy validation selects."""
    cfg = make_config(**(PARTLY_TRAINED | dict(task="copy", steps=120, val_every=20)))
    forced, greedy = run(cfg), run(cfg, validator=greedy_validation)
    checks = [[r["val_seq_acc"] for r in x.history if "val_seq_acc" in r] for x in (forced, greedy)]
    assert checks[0] == checks[1] and len(set(checks[0])) > 2  # validation moved, identically
    measured = ("best_step", "id_seq_acc", "near_ood_seq_acc", "ood_token_acc")
    assert [forced.summary[k] for k in measured] == [greedy.summary[k] for k in measured]
    for name, weight in forced.model.state_dict().items():
        assert torch.equal(weight, greedy.model.state_dict()[name]), name
