import copy
import json
import math

import builders
import pytest
import torch
from builders import TINY_TRAINING

from attnstudy.archs import ARCHS, initial_model
from attnstudy.cli import main
from attnstudy.config import ConfigError
from attnstudy.evaluate import alignment_mass, evaluate, score_predictions, uniform_mass
from attnstudy.positions import POSITIONS
from attnstudy.registries import make_config
from attnstudy.schema import (
    ATTN_ALIGNMENT,
    ATTN_ALIGNMENT_UNIFORM,
    BEST_STEP,
    HEAD_DIVERSITY,
    HEAD_DIVERSITY_INIT,
    ID_SEQ_ACC,
    TRAIN_LOSS,
    VAL_SEQ_ACC,
)
from attnstudy.tasks import EOS, Task, build_task, sample_lengths
from attnstudy.train import Diverged, lr_at, make_optimizer, run, train_step

CPU = torch.device("cpu")

# A decoder that learns copy in distribution in a few hundred steps.
LEARNS_COPY = (
    builders.LEARNS_COPY
    | dict(heads=2, n_layers=2, position="learned", lr=3e-3)
    | dict(train_min_len=1, train_max_len=5, eval_max_len=8)
)


def test_same_seed_gives_identical_losses():
    cfg = make_config(**TINY_TRAINING, seed=3, stop_at_val_acc=2.0)
    a, b = run(cfg), run(cfg)
    assert [r[TRAIN_LOSS] for r in a.history] == [r[TRAIN_LOSS] for r in b.history]
    c = run(make_config(**TINY_TRAINING, seed=4, stop_at_val_acc=2.0))
    assert [r[TRAIN_LOSS] for r in a.history] != [r[TRAIN_LOSS] for r in c.history]


def test_the_multi_tensor_update_gives_the_same_weights_as_the_per_tensor_one():
    cfg = make_config(**TINY_TRAINING, position="rope")
    task = build_task(cfg.task, cfg.eval_max_len)
    fast = initial_model(cfg, task, CPU)
    slow = copy.deepcopy(fast)
    optimizers = make_optimizer(fast, cfg), make_optimizer(slow, cfg)
    for group in optimizers[1].param_groups:
        group["foreach"] = False
    gen = torch.Generator().manual_seed(0)
    for step in range(20):
        batch = task.sample(sample_lengths(1, cfg.train_max_len, 8, gen), gen)
        for model, optimizer in zip((fast, slow), optimizers, strict=True):
            train_step(model, optimizer, batch, torch.Generator().manual_seed(step), step, cfg)
    for a, b in zip(fast.parameters(), slow.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def learned_copy():
    """A tiny decoder that learns copy in distribution (trained once for the module)."""
    return run(make_config(**LEARNS_COPY))


def test_tiny_model_learns_copy_in_distribution(learned_copy):
    assert learned_copy.summary[ID_SEQ_ACC] >= 0.95


def test_non_finite_loss_raises_diverged_with_its_step():
    with pytest.raises(Diverged) as err:
        run(make_config(**(TINY_TRAINING | dict(lr=1e8, warmup_steps=0, score="dot"))))
    assert err.value.step < 30 and not math.isfinite(err.value.loss)


def test_model_selection_uses_in_distribution_validation_only():
    result = run(make_config(**TINY_TRAINING, stop_at_val_acc=2.0))
    val_steps = [r["step"] + 1 for r in result.history if VAL_SEQ_ACC in r]
    assert val_steps == [10, 20, 30]
    assert result.summary[BEST_STEP] in val_steps


@pytest.mark.parametrize("arch", ["decoder", "encoder"])
def test_exactly_the_trained_rows_of_a_learned_table_change(arch):
    """Every row that was a position id of some training sequence changed; every other row
    (the EOS position of the decoder, which is only a label, and every longer one) keeps
    its initial value. The trained ids come from the arch's layout: a self-attention's
    keys are the whole sequence fed to the model."""
    cfg = make_config(**TINY_TRAINING, arch=arch, position="learned", stop_at_val_acc=2.0)
    task = build_task(cfg.task, cfg.eval_max_len)
    initial = initial_model(cfg, task, CPU).transformer.encoding.table.weight.detach()
    result = run(cfg)
    table = result.model.transformer.encoding.table.weight.detach()
    lengths = range(cfg.train_min_len, cfg.train_max_len + 1)
    fed = set().union(*(range(result.model.attention_layout(task, n).keys) for n in lengths))
    changed = (table != initial).any(dim=1)
    assert set(changed.nonzero().flatten().tolist()) == fed


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


def test_exact_match_requires_eos_after_the_target():
    targets = torch.tensor([[5, 6, 7], [8, 9, 5]])
    stops = torch.cat([targets, torch.full((2, 1), EOS)], dim=1)
    runs_on = torch.cat([targets, torch.full((2, 1), 6)], dim=1)
    correct, exact = score_predictions(runs_on, targets, emits_eos=True)
    assert correct.all() and not exact.any()
    assert score_predictions(stops, targets, emits_eos=True)[1].all()
    assert score_predictions(targets, targets, emits_eos=False)[1].all()  # the encoder's blanks


@pytest.mark.parametrize("arch", [a for a, cls in ARCHS.items() if cls.emits_eos])
def test_a_model_that_does_not_stop_scores_no_exact_match(arch, monkeypatch):
    """Greedy output = the exact target, then a symbol instead of EOS: token accuracy 1,
    exact match 0 (Kazemnejad et al. 2023 generate until EOS)."""
    cfg = make_config(**TINY_TRAINING, arch=arch)
    task = build_task(cfg.task, cfg.eval_max_len)
    model = initial_model(cfg, task, CPU)

    def never_stops(batch, gen):
        return torch.cat([batch.targets, batch.targets[:, :1]], dim=1)

    monkeypatch.setattr(model, "predict", never_stops)
    for r in evaluate(model, task, dict.fromkeys(range(1, 5), 4), 0, CPU):
        assert r.token_acc == 1 and r.position_acc == [1.0] * r.length and r.seq_acc == 0


def variants():
    """Every accepted (arch, position, randomized): all the study's variants of the data."""
    for arch in ARCHS:
        for position in POSITIONS:
            for randomized in (False, True):
                try:
                    yield make_config(
                        **TINY_DATA, arch=arch, position=position, randomized=randomized
                    )
                except ConfigError:
                    continue


TINY_DATA = TINY_TRAINING | dict(steps=4, val_every=2, val_samples=4, eval_samples=2, batch_size=4)


def test_every_variant_sees_the_same_training_and_evaluation_examples(monkeypatch):
    """Position draws have their own generator: a randomized run and a plain one with the
    same seed train on the same batches and are evaluated on the same examples."""
    seen: list[torch.Tensor] = []
    sample = Task.sample

    def recording(self, n, gen):
        batch = sample(self, n, gen)
        seen.append(torch.cat([batch.inputs, batch.targets], dim=1))
        return batch

    monkeypatch.setattr(Task, "sample", recording)
    examples = {}
    for cfg in variants():
        seen.clear()
        run(make_config(**(cfg.to_dict() | dict(stop_at_val_acc=2.0))))
        measured = 2 * 2 if ARCHS[cfg.arch].uses_attention else 1  # the long example only
        examples[f"{cfg.arch} {cfg.position} {cfg.randomized}"] = (list(seen), measured)
    reference, _ = examples["decoder none False"]
    for name, (batches, measured) in examples.items():
        # training steps, 2 validations, test lengths, and where there is attention, one long
        # example and the alignment sample, of the trained and of the initial model
        assert len(batches) == 4 + 2 * 4 + 8 + measured, name
        assert all(map(torch.equal, batches, reference)), name


def test_alignment_mass_is_the_weight_on_the_expected_key():
    w = torch.zeros(2, 3, 4, 5)  # (B, H, Tq, Tk)
    w[:, 0, 1, 2], w[:, 0, 3, 4], w[:, 1, 1, 2] = 1.0, 0.5, 0.25
    assert alignment_mass(w, queries=[1, 3], keys=[2, 4]).tolist() == [0.75, 0.125, 0.0]
    assert uniform_mass([2, 4]) == 0.375


def test_attention_measured_on_a_learned_copy(learned_copy):
    """A decoder that learned copy aligns target queries with their source token better
    than uniform attention would; its heads differ from their initialisation. The run
    measured it (train.measured): its summary holds it, and its maps cover every layer."""
    summary = learned_copy.summary
    assert list(learned_copy.attention) == ["layer0_self", "layer1_self"]
    n = learned_copy.config.train_max_len
    visible = [n + 2 + j for j in range(n)]  # the query predicting target j sees BOS…itself
    assert summary[ATTN_ALIGNMENT_UNIFORM] == pytest.approx(uniform_mass(visible))
    assert summary[ATTN_ALIGNMENT_UNIFORM] < summary[ATTN_ALIGNMENT] <= 1
    assert summary[HEAD_DIVERSITY_INIT] != summary[HEAD_DIVERSITY]


def test_attention_measured_without_an_aligned_source_or_attention():
    for task, arch in (("sort", "decoder"), ("copy", "rnn")):
        summary = run(make_config(**(TINY_TRAINING | dict(task=task, arch=arch, steps=2)))).summary
        if arch == "rnn":
            assert not any(key.startswith(("attn_", "head_")) for key in summary)
        else:
            assert math.isnan(summary[ATTN_ALIGNMENT])


def test_head_diversity_at_initialisation_depends_on_the_seed_only():
    a, b, c = (
        run(make_config(**(TINY_TRAINING | change)))
        for change in (dict(steps=2), dict(steps=12), dict(steps=2, seed=1))
    )
    init = [r.summary for r in (a, b, c)]
    assert init[0][HEAD_DIVERSITY_INIT] == init[1][HEAD_DIVERSITY_INIT]
    assert init[0][HEAD_DIVERSITY_INIT] != init[2][HEAD_DIVERSITY_INIT]


def recorded_batches(monkeypatch) -> list:
    """Every batch Task.sample draws from now on, as (lengths, inputs, targets)."""
    seen = []
    sample = Task.sample

    def recording(self, n, gen):
        batch = sample(self, n, gen)
        seen.append((n.clone(), batch.inputs, batch.targets))
        return batch

    monkeypatch.setattr(Task, "sample", recording)
    return seen


def test_padded_training_draws_the_batches_it_always_drew(monkeypatch):
    """Bit identity of the default: per step, lengths uniform per example from the run's
    generator, then the examples, from the same generator."""
    cfg = make_config(**(TINY_DATA | dict(val_every=4)), stop_at_val_acc=2.0)
    seen = recorded_batches(monkeypatch)
    run(cfg)
    task, gen = build_task(cfg.task, cfg.eval_max_len), torch.Generator()
    gen.manual_seed(cfg.seed)
    for n, inputs, targets in seen[: cfg.steps]:
        lengths = sample_lengths(1, cfg.train_max_len, cfg.batch_size, gen)
        expected = task.sample(lengths, gen)
        assert torch.equal(n, lengths) and torch.equal(inputs, expected.inputs)
        assert torch.equal(targets, expected.targets)


def test_by_length_trains_every_step_on_one_length(monkeypatch):
    cfg = make_config(**(TINY_DATA | dict(steps=40, val_every=40)), batching="by_length")
    seen = recorded_batches(monkeypatch)
    run(cfg)
    training = [n for n, _, _ in seen[: cfg.steps]]
    assert all((n == n[0]).all() and len(n) == cfg.batch_size for n in training)
    assert {int(n[0]) for n in training} == set(range(1, cfg.train_max_len + 1))


def test_by_length_learns_copy_in_distribution():
    """One length per step learns more slowly per step at this size (0.74-0.83 ID exact
    match at 400 steps where padded batches give 0.90-0.96): it gets more steps."""
    cfg = make_config(**(LEARNS_COPY | dict(steps=1000, batching="by_length")))
    assert run(cfg).summary[ID_SEQ_ACC] >= 0.95


def test_an_unknown_batching_is_refused_with_the_allowed_values():
    with pytest.raises(ConfigError, match="batching: unknown value 'sorted'; allowed: padded, by"):
        make_config(batching="sorted")


def test_evaluation_examples_are_drawn_per_seed(monkeypatch):
    """Every variant of one seed is tested on the same examples (see above); another seed
    on others, validation and test alike."""
    seen = recorded_batches(monkeypatch)
    examples = {}
    for seed in (0, 1):
        for position in ("none", "alibi"):
            seen.clear()
            cfg = TINY_DATA | dict(val_every=4, position=position, seed=seed)
            run(make_config(**cfg, stop_at_val_acc=2.0))
            examples[seed, position] = [x for _, x, _ in seen[4:]]  # after 4 training steps
    assert all(map(torch.equal, examples[0, "none"], examples[0, "alibi"]))
    assert not any(map(torch.equal, examples[0, "none"], examples[1, "none"]))


def test_eval_samples_up_to_twice_the_training_length_and_eval_samples_far_beyond():
    longer = TINY_DATA | dict(eval_max_len=12, eval_samples=6)
    result = run(make_config(**longer, eval_samples_far=3))
    assert [r.n for r in result.per_length] == [6] * 8 + [3] * 4
    assert [r.n for r in run(make_config(**longer)).per_length] == [6] * 12
