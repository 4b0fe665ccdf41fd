"""A study's results as a dated record, ``results/<study>.md``: what ran (commit, date, CPU,
torch threads, seeds, runs), the claim verdicts with their primary effects, accuracy by
encoding, and the published numbers the runs can be set beside. ``make report`` writes it
from the logged runs, so a record is regenerated, never edited by hand; the README links
to it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from attnstudy.analysis.aggregate import ok_runs
from attnstudy.analysis.anchors import comparisons
from attnstudy.analysis.claims import RULE_VERSION
from attnstudy.analysis.effects import COMPETENCE_TEXT
from attnstudy.analysis.load import Study
from attnstudy.analysis.rules import NEAR_OOD
from attnstudy.analysis.tables import competent_extrapolation
from attnstudy.analysis.variants import transformers, variant_labels
from attnstudy.analysis.verdicts import Verdict
from attnstudy.schema import CPU, EXTRAPOLATION_LEN, GIT_COMMIT, GIT_DIRTY, ID_SEQ_ACC, THREADS

RESULTS_DIR = Path("results")


def _tag(study: Study, key: str) -> str:
    return study.parent.get("tags", {}).get(key) or "unknown"


def trained_at(runs: pd.DataFrame) -> str:
    """Each commit the runs were trained at, short, with its run count (most runs first)."""
    commits = runs.get("git_commit", pd.Series(dtype=object)).dropna()
    counts = commits.str[:7].value_counts(sort=True)
    return ", ".join(f"`{c}` ({n})" for c, n in counts.items()) or "unknown"


def _fmt(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:+.3f}"


def claim_rows(verdicts: list[Verdict]) -> list[str]:
    rows = [
        "| claim | verdict | primary metric | effect E [95% CI] | Δ | p (Holm) | min p | seeds "
        "| runs kept / excluded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        e = v.effect
        effect = f"{_fmt(e.estimate)} [{_fmt(e.ci_low)}, {_fmt(e.ci_high)}]" if e.tested else "–"
        kept = f"{e.n_kept} / {e.n_excluded}"
        p = f"{_p(v.p_holm)} | {_p(e.min_p)}"
        rows.append(
            f"| {v.claim} | {v.label} | `{v.metric}` | {effect} | {v.smallest_effect:g} | {p} "
            f"| {e.n_seeds} | {kept} |"
        )
    return rows


def _p(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:.3g}"


def encoding_rows(runs: pd.DataFrame) -> list[str]:
    """Per task, architecture, score function, head count and encoding (randomized positions
    apart), the Transformer runs (seeds and other axes pooled): ID exact match over every
    run; OOD exact match over L < length ≤ 2L (the claims' primary) and extrapolation length
    over the competent ones only (`competent_extrapolation`), with how many there were."""
    ok = transformers(ok_runs(runs))
    ok = ok.assign(encoding=variant_labels(ok))
    rows = [
        "| task | architecture | score | heads | encoding | runs (competent) | ID exact match "
        "| OOD exact match (L, 2L] | extrapolation length |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    table = (
        competent_extrapolation(ok)
        .groupby(["task", "arch", "score", "heads", "encoding"], sort=True)
        .agg(
            n=("run_id", "size"),
            competent=(NEAR_OOD, "count"),
            id=(ID_SEQ_ACC, "mean"),
            ood=(NEAR_OOD, "mean"),
            ext=(EXTRAPOLATION_LEN, "mean"),
        )
    )
    for key, r in table.sort_values("ood", ascending=False).iterrows():
        ood, ext = _formatted_mean(r.ood, 3), _formatted_mean(r.ext, 1)
        cells = f"{int(r.n)} ({int(r.competent)}) | {r.id:.3f} | {ood} | {ext}"
        rows.append(f"| {' | '.join(map(str, key))} | {cells} |")
    return rows


def comparison_lines(runs: pd.DataFrame) -> list[str]:
    """The report's published comparisons that this study's runs match, ours beside theirs,
    each with its setup differences; nothing when none matches."""
    lines = []
    for block in (b for b in comparisons(runs) if b["matched"]):
        columns = block["columns"]
        lines += [f"### {block['title']}", "", f"{block['citation']}.", ""]
        lines += [f"| {' | '.join(columns)} |", f"|{'---|' * len(columns)}"]
        lines += [f"| {' | '.join(str(r.get(c, '')) for c in columns)} |" for r in block["rows"]]
        lines += ["", block["note"], ""]
    if lines:
        lines = ["## Beside the published numbers", "", *lines]
    return lines


def _formatted_mean(x: float, digits: int) -> str:
    return "–" if pd.isna(x) else f"{x:.{digits}f}"


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
        f"- code: runs trained at {trained_at(runs)}; last run of the study: "
        f"`{_tag(study, GIT_COMMIT)}` (local edits: {_tag(study, GIT_DIRTY)})",
        f"- machine: {_tag(study, CPU)}, {_tag(study, THREADS)} torch thread(s) per worker",
        f"- runs: {len(runs)} grid points, {int((runs['status'] == 'ok').sum())} finished; "
        f"seeds {', '.join(map(str, seeds))}",
        "",
        "## Claims",
        "",
        *claim_rows(verdicts),
        "",
        f"Decided by rule version {RULE_VERSION} of [docs/claims.md](../docs/claims.md) "
        "(Δ: the claim's smallest effect of interest; min p: the smallest p its seeds allow).",
        "",
        "## Accuracy by encoding",
        "",
        "OOD exact match over L < length ≤ 2L (L the longest training length; the range the "
        "claims test) and extrapolation length over the competent runs only "
        f"({COMPETENCE_TEXT}), the count in brackets.",
        "",
        *encoding_rows(runs),
        "",
        *comparison_lines(runs),
    ]
    return "\n".join(lines)


def write_record(study: Study, verdicts: list[Verdict], out_dir: Path = RESULTS_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{study.name}.md"
    path.write_text(record_markdown(study, verdicts), encoding="utf-8")
    return path
