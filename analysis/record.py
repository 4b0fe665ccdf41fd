"""A study's results as a dated record, ``results/<study>.md``: what ran (commit, date, CPU,
torch threads, seeds, runs), the claim verdicts with their primary effects, and accuracy by
encoding. ``make report`` writes it from the logged runs, so a record is regenerated, never
edited by hand; the README links to it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from analysis.aggregate import ok_runs
from analysis.claims import Verdict
from analysis.load import Study

RESULTS = Path("results")


def _tag(study: Study, key: str) -> str:
    return study.parent.get("tags", {}).get(key) or "unknown"


def _fmt(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:+.3f}"


def claim_rows(verdicts: list[Verdict]) -> list[str]:
    rows = [
        "| claim | verdict | primary metric | effect E [95% CI] | seeds | runs kept / excluded |",
        "|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        e = v.effect
        effect = f"{_fmt(e.estimate)} [{_fmt(e.ci_low)}, {_fmt(e.ci_high)}]" if e.tested else "–"
        kept = f"{e.n_kept} / {e.n_excluded}"
        rows.append(f"| {v.claim} | {v.label} | `{v.metric}` | {effect} | {e.n_seeds} | {kept} |")
    return rows


def encoding_rows(runs: pd.DataFrame) -> list[str]:
    """Mean over runs (seeds and other axes) of the plain decoder runs, per encoding."""
    ok = ok_runs(runs)
    ok = ok[(ok["arch"] == "decoder") & ~ok["randomized"].fillna(False).astype(bool)]
    rows = [
        "| task | encoding | runs | ID exact match | OOD exact match | extrapolation length |",
        "|---|---|---|---|---|---|",
    ]
    table = ok.groupby(["task", "position"], sort=True).agg(
        n=("run_id", "size"),
        id=("id_seq_acc", "mean"),
        ood=("ood_seq_acc", "mean"),
        ext=("extrapolation_len", "mean"),
    )
    for (task, position), r in table.sort_values("ood", ascending=False).iterrows():
        cells = f"{int(r.n)} | {r.id:.3f} | {r.ood:.3f} | {r.ext:.1f}"
        rows.append(f"| {task} | {position} | {cells} |")
    return rows


def record_markdown(study: Study, verdicts: list[Verdict], now: datetime | None = None) -> str:
    runs = study.runs
    now = now or datetime.now(timezone.utc)
    seeds = sorted(int(s) for s in runs["seed"].dropna().unique())
    lines = [
        f"# Results of study `{study.name}`",
        "",
        f"Written by `make report STUDY={study.name}` on {now:%Y-%m-%d %H:%M} UTC from the "
        "runs logged in MLflow. Regenerate it; do not edit it.",
        "",
        f"- commit: `{_tag(study, 'attnstudy.git_commit')}` (local edits: "
        f"{_tag(study, 'attnstudy.git_dirty')})",
        f"- machine: {_tag(study, 'attnstudy.cpu')}, "
        f"{_tag(study, 'attnstudy.torch_threads')} torch thread(s) per worker",
        f"- runs: {len(runs)} grid points, {int((runs['status'] == 'ok').sum())} finished; "
        f"seeds {', '.join(map(str, seeds))}",
        "",
        "## Claims",
        "",
        *claim_rows(verdicts),
        "",
        "Rules and metrics: [docs/claims.md](../docs/claims.md).",
        "",
        "## Accuracy by encoding (causal decoder, plain positions)",
        "",
        *encoding_rows(runs),
        "",
    ]
    return "\n".join(lines)


def write_record(study: Study, verdicts: list[Verdict], out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{study.name}.md"
    path.write_text(record_markdown(study, verdicts), encoding="utf-8")
    return path
