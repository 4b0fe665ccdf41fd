"""The report writer: one study's MLflow runs -> ``reports/<study>/report.html`` (self-contained:
figures embedded as base64 PNG, no scripts, no external resources) and ``report.pdf``, both
logged as artifacts of the study's parent run, with the tidy frames saved beside them as CSV.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from analysis import anchors, plots, tables
from analysis.aggregate import METHODS_TEXT, ok_runs
from analysis.claims import DECISION_RULE, Verdict, evaluate_claims, holm_family
from analysis.load import Study, load_attention, load_study, save_frames

TEMPLATES = Path(__file__).with_name("templates")
MLFLOW_UI = "http://127.0.0.1:5000"
PNG_DPI = 110
ROWS_PER_PAGE = 24
CLAIMS_PER_PAGE = 3
PDF_SUMMARY_COLUMNS = ("seeds", "diverged", "ID exact match", "OOD exact match", "OOD token acc.")
SELECTION_RULE = (
    "Model selection uses in-distribution data only: every val_every steps the model is "
    "validated on fresh examples of the training lengths (train_min_len..train_max_len, a "
    "fixed validation seed) and the checkpoint with the best validation exact match is kept; "
    "early stopping (patience, stop_at_val_acc) reads the same validation. No longer "
    "sequence is seen before the final evaluation, which decodes greedily eval_samples fresh "
    "examples of every length 1..eval_max_len drawn from one fixed test seed, the same "
    "examples for every variant (so comparisons can be paired)."
)
VERDICT_CLASS = {"supported": "ok", "refuted": "bad", "mixed": "mid", "inconclusive": "none"}


@dataclass(frozen=True)
class FigureSpec:
    key: str  # anchor id; the claims refer to figures by it
    title: str
    caption: str
    make: Callable[[Study], Figure | None]


@dataclass(frozen=True)
class ReportFigure:
    key: str
    number: int
    title: str
    caption: str
    figure: Figure
    src: str  # data: URI of the PNG


def build_report(
    study: str, out_dir: Path | str | None = None, tracking_uri: str | None = None
) -> tuple[Path, Path]:
    """Write report.html, report.pdf and the tidy CSVs into ``out_dir`` (default
    reports/<study>), log both reports to the study's parent run; return their paths.
    Raises ``analysis.load.StudyError`` when the study has no trial runs."""
    data = load_study(study, tracking_uri)
    out = Path(out_dir) if out_dir is not None else Path("reports") / study
    save_frames(data, out)
    figures = make_figures(data)
    verdicts = evaluate_claims(data.runs, data.lengths, data.positions)
    context = report_context(data, figures, verdicts)
    html_path, pdf_path = out / "report.html", out / "report.pdf"
    html_path.write_text(render_html(context), encoding="utf-8")
    write_pdf(pdf_path, context, figures)
    log_report(data, [html_path, pdf_path])
    return html_path, pdf_path


CI = "Bands and bars: 95% percentile-bootstrap CI of the mean over runs (seeds)."
FIGURES = (  # every figure the report can hold, in order; each is left out without data
    FigureSpec(
        "acc_vs_length",
        "Exact match by input length",
        "Mean exact match over runs at every evaluated length, one line per "
        "positional encoding (averaged over score functions and head counts), per "
        "task (rows) and architecture (columns); dotted line: the longest training "
        f"length. {CI}",
        lambda s: plots.accuracy_vs_length(s.lengths),
    ),
    FigureSpec(
        "token_acc_vs_length",
        "Token accuracy by input length",
        f"As the figure above, for per-token accuracy. {CI}",
        lambda s: plots.accuracy_vs_length(s.lengths, "token_acc"),
    ),
    FigureSpec(
        "heatmap_score_position",
        "Score function × positional encoding",
        "Mean out-of-distribution exact match (lengths beyond training) over runs "
        "for each score function and positional encoding; one panel per task and "
        "transformer architecture.",
        lambda s: plots.score_position_heatmap(s.runs),
    ),
    FigureSpec(
        "heads",
        "Number of heads at fixed width",
        f"In- and out-of-distribution exact match against the number of heads, one row per "
        f"task and model width (d_model fixed within a row), per positional encoding. {CI}",
        lambda s: plots.heads_effect(s.runs),
    ),
    FigureSpec(
        "arch",
        "Architecture",
        f"Exact match per architecture and encoding. {CI}",
        lambda s: plots.architecture_effect(s.runs),
    ),
    FigureSpec(
        "rnn",
        "RNN baselines beside the transformers",
        f"Exact match by length per architecture (transformer variants averaged). {CI}",
        lambda s: plots.architectures_vs_length(s.lengths),
    ),
    FigureSpec(
        "per_position",
        "Accuracy by target position (claim C1)",
        "Token accuracy by output position, mean over runs; RNN baselines in black and grey. "
        "Left, training lengths: by relative position (i + ½)/T in eighths (T target "
        "tokens), averaged within "
        "each length first and then over lengths (the comparison claim C1 makes). Right, "
        "longer lengths: by absolute position, averaged over the lengths that reach it.",
        lambda s: plots.per_position_accuracy(s.positions),
    ),
    FigureSpec(
        "training_curves",
        "Training curves",
        "Training loss (log scale) and in-distribution validation exact match "
        "against the training step, mean over runs per encoding.",
        lambda s: plots.training_curves(s.curves),
    ),
    FigureSpec(
        "cost",
        "Cost",
        f"Parameters, time per training step and activation memory "
        f"of one training step (tensors saved for backward) per score function and "
        f"encoding. {CI}",
        lambda s: plots.cost_figure(s.runs),
    ),
    FigureSpec(
        "attention_maps",
        "Attention maps of the best and worst variants",
        "Attention weights of every head in the last layer on one example of the "
        "longest training length (as the study recorded it), for the variant with "
        "the highest and the lowest mean out-of-distribution exact match.",
        lambda s: plots.attention_heads(attention_examples(s)),
    ),
    FigureSpec(
        "mrr",
        "Ranking across tasks",
        "Mean reciprocal rank of each positional encoding (and score function) by "
        "mean out-of-distribution exact match within each task and architecture, "
        "as Kazemnejad et al. 2023; plain and randomized positions ranked apart. Drawn "
        "only with two or more tasks or architectures to rank across.",
        lambda s: plots.mrr_ranking(s.runs),
    ),
)


def make_figures(data: Study) -> list[ReportFigure]:
    """The figures that have data, numbered, each encoded as a PNG data URI."""
    out = []
    for spec in FIGURES:
        figure = spec.make(data)
        if figure is not None:
            number = len(out) + 1
            out.append(
                ReportFigure(
                    spec.key, number, spec.title, spec.caption, figure, png_data_uri(figure)
                )
            )
    return out


def png_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PNG_DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def attention_examples(data: Study) -> dict[str, dict]:
    """Recorded attention of one run (lowest seed) of the best and of the worst variant among
    runs with attention, ranked by mean OOD then ID exact match over seeds; titled."""
    ok = ok_runs(data.runs, "ood_seq_acc")
    ok = ok[ok["attn_sharpness"].notna()]
    if ok.empty:
        return {}
    by = tables.config_columns(ok)
    variants = [
        (g["ood_seq_acc"].mean(), g["id_seq_acc"].mean(), k, g)
        for k, g in ok.groupby(by, dropna=False)
    ]
    variants.sort(key=lambda v: v[:2])
    picks = {"best": variants[-1]} | ({"worst": variants[0]} if len(variants) > 1 else {})
    examples = {}
    for label, (ood, _, key, group) in picks.items():
        run = group.sort_values("seed").iloc[0]
        name = " · ".join(f"{c} {v}" for c, v in zip(by, key, strict=True))
        title = f"{label}: {name}\n(mean OOD exact match {ood:.2f}, seed {run['seed']})"
        maps = load_attention(data.tracking_uri, run["run_id"])
        if maps:
            examples[title] = maps
    return examples


def report_context(data: Study, figures: list[ReportFigure], verdicts: list[Verdict]) -> dict:
    """Everything the template shows, as plain values."""
    summary_columns, summary = tables.summary_rows(data.runs)
    cost_columns, cost = tables.cost_rows(data.runs)
    fixed, varied = tables.settings(data.runs, list(data.param_names))
    return {
        "study": _study_meta(data),
        "completeness": tables.completeness(data.runs, data.attempts, data.grid_size, data.grid),
        "summary_columns": summary_columns,
        "summary": summary,
        "figures": figures,
        "cost_columns": cost_columns,
        "cost": cost,
        "statistics": tables.statistics_tables(data.runs),
        "statistics_methods": METHODS_TEXT,
        "claims": [_claim_row(v, figures) for v in verdicts],
        "claims_rule": DECISION_RULE,
        "holm_family": holm_family(verdicts),
        "comparisons": anchors.comparisons(data.runs),
        "methods": _methods(data, fixed, varied),
    }


def render_html(context: dict) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(**context)


def write_pdf(path: Path, context: dict, figures: list[ReportFigure]) -> None:
    """Title page, summary table pages, one page per figure, claims pages."""
    with PdfPages(path, metadata={"Title": f"attnstudy report: {context['study']['name']}"}) as pdf:
        pdf.savefig(_title_page(context))
        for page in _chunks(context["summary"], ROWS_PER_PAGE) or [[]]:
            pdf.savefig(_table_page(context["summary_columns"], page))
        for f in figures:
            f.figure.suptitle(f"Figure {f.number}. {f.title}", fontsize=11)
            pdf.savefig(f.figure)
        for page in _chunks(context["claims"], CLAIMS_PER_PAGE):
            pdf.savefig(_claims_page(page))


def log_report(data: Study, paths: list[Path]) -> None:
    """Attach the reports to the study's parent run (nothing to do without one)."""
    run_id = data.parent.get("run_id")
    if run_id is None:
        return
    client = MlflowClient(tracking_uri=data.tracking_uri)
    for path in paths:
        client.log_artifact(run_id, str(path))


def _study_meta(data: Study) -> dict:
    experiment = f"{MLFLOW_UI}/#/experiments/{data.experiment_id}"
    return {
        "name": data.name,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "tracking_uri": data.tracking_uri,
        "experiment_id": data.experiment_id,
        "experiment_url": experiment,
        "parent_run_id": data.parent.get("run_id", "none"),
        "run_url": f"{experiment}/runs/",
        "description": data.parent.get("tags", {}).get("mlflow.note.content", ""),
    }


def _claim_row(verdict: Verdict, figures: list[ReportFigure]) -> dict:
    shown = {f.key: f for f in figures}
    figure = shown.get(verdict.figure)
    e = verdict.effect
    return {
        "claim": verdict.claim,
        "text": verdict.text,
        "verdict": verdict.label,
        "verdict_class": VERDICT_CLASS.get(verdict.verdict, "none"),
        "rule": verdict.rule,
        "metric": verdict.metric,
        "effect": tables.fmt_ci(e.estimate, e.ci_low, e.ci_high),
        "effect_text": e.text(verdict.metric),
        "p": f"{tables.fmt(e.p, 4)} (Holm {tables.fmt(verdict.p_holm, 4)})",
        "seeds": e.n_seeds,
        "runs": f"{e.n_kept} kept, {e.n_excluded} excluded",
        "exclusions": e.exclusions(),
        "evidence": verdict.evidence,
        "note": verdict.reason,
        "figure_key": figure.key if figure else None,
        "figure_label": f"Figure {figure.number}" if figure else "no figure (no runs for it)",
    }


def _methods(data: Study, fixed: list[dict], varied: list[dict]) -> dict:
    attempts = data.attempts.merge(data.runs[["run_id"]].assign(used=True), "left", "run_id")
    versions = {
        c: sorted(data.runs[c].dropna().unique()) for c in data.runs if c.startswith("version.")
    }
    return {
        "fixed": fixed,
        "varied": varied,
        "seeds": ", ".join(str(s) for s in sorted(data.runs["seed"].dropna().unique())),
        "selection": SELECTION_RULE,
        "versions": {k.removeprefix("version."): ", ".join(v) for k, v in versions.items()},
        "commits": sorted(data.runs["git_commit"].dropna().unique()),
        "runs": [
            {
                "grid_key": r["grid_key"],
                "status": r["status"],
                "run_id": r["run_id"],
                "used": bool(r["used"] is True),
            }
            for _, r in attempts.sort_values(["grid_key", "start_time"]).iterrows()
        ],
    }


def _title_page(context: dict) -> Figure:
    study, done = context["study"], context["completeness"]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(done["counts"].items()))
    lines = [
        f"Study {study['name']}",
        "",
        f"Generated {study['generated']} from {study['tracking_uri']}",
        f"Experiment {study['experiment_id']}, parent run {study['parent_run_id']}",
        f"Grid points finished: {done['n_finished']} of {done['grid_size'] or '?'} ({counts}); "
        f"missing: {done['n_missing']}",
        "",
        "Claims:",
    ]
    lines += [
        f"  {c['claim']}: {c['verdict']}" + (f" ({c['note']})" if c["note"] else "")
        for c in context["claims"]
    ]
    return _text_page("\n".join(lines), "attnstudy report")


def _table_page(columns: list[str], rows: list[dict]) -> Figure:
    config = [c for c in columns if c not in tables.METRIC_NAMES.values() and "max" not in c]
    keep = [c for c in columns if c in config or c in PDF_SUMMARY_COLUMNS]
    fig = Figure(figsize=(11.7, 8.3))
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title("Summary per configuration: mean [95% CI] over seeds", fontsize=11)
    if rows:
        table = ax.table([[r[c] for c in keep] for r in rows], colLabels=keep, loc="upper center")
        table.auto_set_font_size(False)
        table.set_fontsize(6.5)
        table.auto_set_column_width(list(range(len(keep))))
    return fig


def _claims_page(claims: list[dict]) -> Figure:
    blocks = []
    for c in claims:
        parts = [
            f"{c['claim']}: {c['verdict'].upper()}  {c['note']}",
            f"Claim: {c['text']}",
            f"Rule: {c['rule']}",
            f"Primary effect: {c['effect_text']}; p (Holm) {c['p']}",
            f"Runs: {c['exclusions']}",
            f"Evidence: {c['evidence']}",
            f"Figure: {c['figure_label']}",
        ]
        blocks.append("\n".join(textwrap.fill(p, 120, subsequent_indent="    ") for p in parts))
    return _text_page("\n\n".join(blocks), "Claims")


def _text_page(text: str, title: str) -> Figure:
    fig = Figure(figsize=(11.7, 8.3))
    fig.text(0.05, 0.95, title, fontsize=14, weight="bold", va="top")
    fig.text(0.05, 0.90, text, fontsize=8.5, va="top", family="monospace")
    return fig


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
