import json
import math

import pytest
import torch

from attnstudy.cli import main
from attnstudy.config import make_config
from attnstudy.train import Diverged, lr_at, run

TINY = dict(
    d_model=16,
    heads=2,
    n_layers=1,
    train_max_len=4,
    eval_max_len=8,
    steps=30,
    val_every=10,
    val_samples=16,
    eval_samples=8,
    warmup_steps=5,
)


def test_same_seed_gives_identical_losses():
    cfg = make_config(**TINY, seed=3, stop_at_val_acc=2.0)
    a, b = run(cfg), run(cfg)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    c = run(make_config(**TINY, seed=4, stop_at_val_acc=2.0))
    assert [r["train_loss"] for r in a.history] != [r["train_loss"] for r in c.history]


def test_tiny_model_learns_copy_in_distribution():
    cfg = make_config(
        task="copy",
        d_model=32,
        heads=2,
        n_layers=2,
        position="learned",
        train_min_len=1,
        train_max_len=5,
        eval_max_len=8,
        steps=400,
        lr=3e-3,
        batch_size=32,
        val_every=50,
        eval_samples=32,
    )
    result = run(cfg)
    assert result.summary["id_seq_acc"] >= 0.95


def test_non_finite_loss_raises_diverged_with_its_step():
    with pytest.raises(Diverged) as err:
        run(make_config(**(TINY | dict(lr=1e8, warmup_steps=0, score="dot"))))
    assert err.value.step < 30 and not math.isfinite(err.value.loss)


def test_model_selection_uses_in_distribution_validation_only():
    result = run(make_config(**TINY, stop_at_val_acc=2.0))
    val_steps = [r["step"] + 1 for r in result.history if "val_seq_acc" in r]
    assert val_steps == [10, 20, 30]
    assert result.summary["best_step"] in val_steps


def test_untrained_learned_positions_keep_their_initial_values():
    cfg = make_config(**TINY, position="learned", stop_at_val_acc=2.0)
    torch.manual_seed(cfg.seed)
    from attnstudy.archs import build_model
    from attnstudy.tasks import build_task

    initial = build_model(cfg, build_task("copy", 8)).transformer.encoding.table.weight
    table = run(cfg).model.transformer.encoding.table.weight.detach()
    longest_trained = 4 + 1 + 4 + 1  # input SEP target EOS at train_max_len = 4
    assert not torch.equal(table[:longest_trained], initial[:longest_trained])
    torch.testing.assert_close(table[longest_trained:], initial[longest_trained:].detach())


def test_warmup_then_cosine_decay():
    cfg = make_config(lr=1.0, warmup_steps=10, steps=110)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55) and lr_at(110, cfg) == pytest.approx(0.1)


def test_cli_json_prints_exactly_one_object(capsys):
    args = [
        "train",
        "--quiet",
        "--json",
        "--d-model",
        "16",
        "--heads",
        "2",
        "--n-layers",
        "1",
        "--train-max-len",
        "3",
        "--eval-max-len",
        "6",
        "--steps",
        "10",
        "--val-every",
        "5",
        "--eval-samples",
        "4",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"config", "summary", "per_length"}
    assert [r["length"] for r in out["per_length"]] == list(range(1, 7))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--score", "bogus"], "score: unknown value 'bogus'; allowed: dot, scaled_dot"),
        (["--heads", "3"], "heads: must divide d_model=64"),
        (["--train-max-len", "0"], "train_max_len: must be >= train_min_len"),
        (["--eval-max-len", "4"], "eval_max_len: must be 0"),
        (["--steps", "ten"], "steps: expected int, got 'ten'"),
        (["--position", "none", "--randomized"], "randomized: needs a position encoding"),
    ],
)
def test_cli_bad_input_exits_2_with_one_clear_line(args, message, capsys):
    assert main(["train", "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
