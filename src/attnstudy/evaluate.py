"""Per-length evaluation with greedy decoding (no teacher forcing), summary metrics, and
attention maps.

Evaluation examples are drawn per run seed (`evaluation_seed`): every variant trained
with one seed is tested on exactly the same examples (paired comparisons), and each seed
on examples of its own, so the seeds over which results are compared are independent
draws of the test set too. Randomized position ids come from a generator of their own
(POSITION_SEED), so they never change the examples.

Exact match of an autoregressive architecture is the target followed by EOS (Kazemnejad
et al. 2023 generate until EOS); token accuracy is over the target positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnstudy.archs import Arch
from attnstudy.model import record_attention
from attnstudy.schema import (
    EXTRAPOLATION_LEN,
    EXTRAPOLATION_LEN_50,
    ID_SEQ_ACC,
    ID_SEQ_ACC_AT_MAX,
    ID_TOKEN_ACC,
    NEAR_OOD_SEQ_ACC,
    NEAR_OOD_TOKEN_ACC,
    OOD_SEQ_ACC,
    OOD_TOKEN_ACC,
    POSITION_BY_LENGTH_KEY,
    POSITION_OOD_KEY,
    POSITION_STRIDE,
    VAL_NEXT_TOKEN_ACC,
    VAL_SEQ_ACC,
)
from attnstudy.tasks import EOS, Batch, Task

VALIDATION_SEED = 1_000_003
TEST_SEED = 2_000_029
SEED_STRIDE = 2_147_483_647  # a prime > TEST_SEED - VALIDATION_SEED: the streams never meet
POSITION_SEED = 3_000_017  # randomized position ids in every evaluation
EXTRAPOLATION_THRESHOLD = 0.9
LOOSE_THRESHOLD = 0.5  # a second extrapolation length: where half the sequences still pass


@dataclass
class LengthResult:
    length: int
    n: int
    token_acc: float
    seq_acc: float
    position_acc: list[float]  # token accuracy at each target position (0 = first)


def score_predictions(predicted: Tensor, targets: Tensor, emits_eos: bool) -> tuple[Tensor, Tensor]:
    """Token correctness (B, Tout) over the target positions, and exact match (B,): every
    target token right and, when the model emits EOS, EOS right after the target."""
    width = targets.shape[1]
    correct = predicted[:, :width] == targets
    exact = correct.all(dim=1)
    if emits_eos:
        exact &= predicted[:, width] == EOS
    return correct, exact


def evaluation_seed(stream: int, run_seed: int) -> int:
    """The seed of an evaluation stream (VALIDATION_SEED or TEST_SEED) for a run seeded
    `run_seed`: the same for every variant of that seed, different for every other seed."""
    return (stream + SEED_STRIDE * run_seed) % 2**63


def examples(task: Task, samples: dict[int, int], seed: int, device: torch.device):
    """(length, batch) for every length of `samples` (length → number of examples), drawn
    in that order from one generator seeded `seed`."""
    gen = torch.Generator().manual_seed(seed)
    for length, n in samples.items():
        yield length, task.sample(torch.full((n,), length), gen).to(device)


@torch.no_grad()
def evaluate(
    model: Arch, task: Task, samples: dict[int, int], seed: int, device: torch.device
) -> list[LengthResult]:
    """Exact match and token accuracy of greedy predictions on `examples`."""
    was_training = model.training
    model.eval()
    positions = torch.Generator().manual_seed(POSITION_SEED)
    results = []
    for length, batch in examples(task, samples, seed, device):
        n = len(batch.inputs)
        predicted = model.predict(batch, positions)
        correct, exact = score_predictions(predicted, batch.targets, model.emits_eos)
        results.append(
            LengthResult(
                length=length,
                n=n,
                token_acc=correct.float().mean().item(),
                seq_acc=exact.float().mean().item(),
                position_acc=correct.float().mean(dim=0).tolist(),
            )
        )
    model.train(was_training)
    return results


@torch.no_grad()
def validate(
    model: Arch, task: Task, samples: dict[int, int], seed: int, device: torch.device
) -> dict[str, float]:
    """Validation on the examples `evaluate` would draw, in one teacher-forced pass per
    length: `val_seq_acc`, the mean over lengths of exact match (greedy's, see
    `Arch.teacher_forced`), and `val_next_token_acc`, the share of labelled tokens
    predicted right given the true tokens before them."""
    was_training = model.training
    model.eval()
    positions = torch.Generator().manual_seed(POSITION_SEED)
    exact, next_token = [], []
    for _, batch in examples(task, samples, seed, device):
        right, labelled = model.teacher_forced(batch, positions)
        exact.append((right | ~labelled).all(dim=1).float().mean().item())
        next_token.append(right[labelled].float().mean().item())
    model.train(was_training)
    return {VAL_SEQ_ACC: _mean(exact), VAL_NEXT_TOKEN_ACC: _mean(next_token)}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def extrapolation_len(results: list[LengthResult], threshold=EXTRAPOLATION_THRESHOLD) -> int:
    """Largest L such that every evaluated length ≤ L has seq_acc ≥ threshold (0 if none)."""
    longest = 0
    for r in sorted(results, key=lambda r: r.length):
        if r.seq_acc < threshold:
            break
        longest = r.length
    return longest


def summarize(results: list[LengthResult], train_max_len: int) -> dict[str, float]:
    """In-distribution (length ≤ train_max_len) and out-of-distribution means, the latter
    over every tested length beyond L and over L < length ≤ 2L (near_ood: the primary range
    of the OOD claims); the exact match at the longest training length (the competence
    gate: short lengths are trivial, so the mean over 1..L can pass while length L fails);
    and the extrapolation length at exact match 0.9 and 0.5."""
    id_ = [r for r in results if r.length <= train_max_len]
    ood = [r for r in results if r.length > train_max_len]
    near = [r for r in ood if r.length <= 2 * train_max_len]
    return {
        ID_SEQ_ACC: _mean([r.seq_acc for r in id_]),
        ID_SEQ_ACC_AT_MAX: _mean([r.seq_acc for r in id_ if r.length == train_max_len]),
        ID_TOKEN_ACC: _mean([r.token_acc for r in id_]),
        OOD_SEQ_ACC: _mean([r.seq_acc for r in ood]),
        OOD_TOKEN_ACC: _mean([r.token_acc for r in ood]),
        NEAR_OOD_SEQ_ACC: _mean([r.seq_acc for r in near]),
        NEAR_OOD_TOKEN_ACC: _mean([r.token_acc for r in near]),
        EXTRAPOLATION_LEN: extrapolation_len(results),
        EXTRAPOLATION_LEN_50: extrapolation_len(results, LOOSE_THRESHOLD),
    }


def position_table(results: list[LengthResult], train_max_len: int) -> list[dict]:
    """Token accuracy by target position: for every in-distribution length, one row per
    (length, target position), so early and late positions can be compared within a length
    (split "id"); beyond training, averaged over the lengths longer than the position
    (split "ood", length None)."""
    rows = [
        {"split": "id", "length": r.length, "target_pos": p, "token_acc": acc}
        for r in results
        if r.length <= train_max_len
        for p, acc in enumerate(r.position_acc)
    ]
    sums: dict[int, list[float]] = {}
    for r in results:
        if r.length > train_max_len:
            for p, acc in enumerate(r.position_acc):
                sums.setdefault(p, []).append(acc)
    ood = [
        {"split": "ood", "length": None, "target_pos": p, "token_acc": _mean(v)}
        for p, v in sorted(sums.items())
    ]
    return rows + ood


def position_metric(row: dict) -> tuple[str, int]:
    """MLflow key and step of a `position_table` row: in-distribution rows under
    POSITION_BY_LENGTH_KEY at step length·POSITION_STRIDE + target position, the others
    under POSITION_OOD_KEY at step target position."""
    if row["split"] == "id":
        return POSITION_BY_LENGTH_KEY, row["length"] * POSITION_STRIDE + row["target_pos"]
    return POSITION_OOD_KEY, row["target_pos"]


@torch.no_grad()
def attention_weights(
    model: Arch, task: Task, length: int, samples: int, seed: int, device: torch.device
) -> tuple[list[Tensor], Batch]:
    """Attention weights of every layer and head for `samples` examples of one length, as
    the model computes them in its teacher-forced forward pass: a list (in call order:
    layer by layer, self- then cross-attention) of (B, H, Tq, Tk) tensors, and the batch."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    batch = task.sample(torch.full((samples,), length), gen).to(device)
    with record_attention(model) as maps:
        model.loss(batch, torch.Generator().manual_seed(POSITION_SEED))
    model.train(was_training)
    return [m.cpu() for m in maps], batch.to(torch.device("cpu"))


def attention_maps(
    model: Arch, task: Task, length: int, seed: int, device: torch.device
) -> tuple[list[Tensor], Tensor]:
    """`attention_weights` of one example: (H, Tq, Tk) tensors, and its inputs."""
    weights, batch = attention_weights(model, task, length, 1, seed, device)
    return [w[0] for w in weights], batch.inputs[0]


def alignment_mass(weights: Tensor, queries: list[int], keys: list[int]) -> Tensor:
    """Attention mass per head on the expected key: query queries[j] should attend to key
    keys[j]; (B, H, Tq, Tk) → (H,), the mean over examples and target queries. The weights
    are as the score normalises them (`Score.weights`; a sigmoid row need not sum to 1)."""
    return weights[:, :, queries, keys].mean(dim=(0, 2))


def uniform_mass(visible: list[int]) -> float:
    """The mass uniform attention puts on one key, for queries that see `visible` keys
    each (mean over the queries): the chance level of `alignment_mass`."""
    return sum(1 / v for v in visible) / len(visible)


def alignment_sharpness(weights: Tensor) -> float:
    """Mean over heads and queries of the largest attention weight (1 = one-hot, 1/Tk =
    uniform)."""
    return weights.max(dim=-1).values.mean().item()


def head_diversity(weights: Tensor) -> float:
    """Mean pairwise Jensen–Shannon divergence (nats) between the heads of one layer,
    (H, Tq, Tk) → scalar; 0 when every head attends alike. Each row is first scaled to sum
    to 1, since a normaliser other than softmax (sigmoid) need not give distributions."""
    H = weights.shape[0]
    if H < 2:
        return 0.0
    p = weights.clamp_min(1e-12)
    p = p / p.sum(-1, keepdim=True)
    total, pairs = 0.0, 0
    for a in range(H):
        for b in range(a + 1, H):
            m = 0.5 * (p[a] + p[b])
            js = 0.5 * (p[a] * (p[a] / m).log()).sum(-1) + 0.5 * (p[b] * (p[b] / m).log()).sum(-1)
            total, pairs = total + js.mean().item(), pairs + 1
    return total / pairs
