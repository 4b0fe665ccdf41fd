"""Section 4: greedy decoding at every evaluated length, with the key-value cache
(`DecoderOnly.predict`) and without it (recomputing the whole prefix at every step, the
baseline implemented here)."""

from __future__ import annotations

import torch
from torch import Tensor

from attnstudy.archs import DecoderOnly, build_model
from attnstudy.bench.rows import Row, row
from attnstudy.bench.shapes import Plan
from attnstudy.bench.timing import timed
from attnstudy.tasks import Batch, build_task

SECTION = "4. greedy decoding (evaluation)"
SCORE, POSITION = "scaled_dot", "none"


@torch.no_grad()
def predict_recomputing(model: DecoderOnly, batch: Batch, gen: torch.Generator) -> Tensor:
    """Greedy (B, Tout + 1) predictions without a cache: every step runs the decoder over the
    prompt and every token generated so far."""
    seq = model.prompt(batch)
    steps, prompt_len = batch.targets.shape[1] + 1, seq.shape[1]  # the target, then EOS
    pos = model.position_ids(batch.input_lens + steps + 2, gen)
    for _ in range(steps):
        logits = model.head(model.transformer(seq, pos)[:, -1])  # (B, vocab)
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    return seq[:, prompt_len:]


@torch.no_grad()
def decode_times(model: DecoderOnly, task, lengths: range, samples: int) -> list[dict]:
    """Per length: seconds with and without the cache, and whether both agree."""
    model.eval()
    out = []
    for n in lengths:
        gen = torch.Generator().manual_seed(n)
        batch = task.sample(torch.full((samples,), n), gen)
        cached, t_cached = timed(lambda b=batch: model.predict(b, torch.Generator()))
        full, t_full = timed(lambda b=batch: predict_recomputing(model, b, torch.Generator()))
        steps = batch.targets.shape[1]
        out.append(
            dict(
                length=n,
                steps=steps,
                cached=t_cached,
                full=t_full,
                same=bool((cached == full).all()),
            )
        )
    return out


def decoding_rows(plan: Plan) -> list[Row]:
    shape = plan.study_shape
    cfg = shape.config(score=SCORE, position=POSITION)
    task = build_task(cfg.task, cfg.eval_max_len)
    torch.manual_seed(0)
    model = build_model(cfg, task)
    samples = 8 if plan.quick else cfg.eval_samples
    times = decode_times(model, task, range(1, cfg.eval_max_len + 1), samples)
    label = f"{SCORE} + {POSITION} @ {shape.name}, {samples} examples per length"
    return [total_row(times, cfg.eval_max_len, label)] + [
        token_row(t, samples, label) for t in times if t["length"] in milestones(cfg.train_max_len)
    ]


def milestones(train_max_len: int) -> set[int]:
    return {max(1, train_max_len // 2), train_max_len, 2 * train_max_len, 4 * train_max_len}


def total_row(times: list[dict], longest: int, label: str) -> Row:
    cached, full = sum(t["cached"] for t in times), sum(t["full"] for t in times)
    same = all(t["same"] for t in times)
    return row(
        SECTION,
        f"all lengths 1..{longest}, KV cache vs recomputing ({label})",
        cached,
        "s",
        full,
        goal=("<", 1.0),
        note=f"speed-up {full / cached:.1f}x; identical predictions: {'yes' if same else 'NO'}",
    )


def token_row(t: dict, samples: int, label: str) -> Row:
    per_token = 1e6 / (t["steps"] * samples)
    return row(
        SECTION,
        f"length {t['length']} ({t['steps']} tokens generated), per token ({label})",
        t["cached"] * per_token,
        "us/token",
        t["full"] * per_token,
        note=f"speed-up {t['full'] / t['cached']:.1f}x",
        length=t["length"],
    )
