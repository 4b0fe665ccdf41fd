"""The report writer: one study's MLflow runs -> ``reports/<study>/report.html`` (self-contained:
figures embedded as base64 PNG, no scripts, no external resources), ``report.pdf`` (the same
HTML typeset by WeasyPrint through its print stylesheet) and every table as CSV under
``tables/`` beside them, with the tidy frames; both reports are logged as artifacts of the
study's parent run.

The report answers first: the question, the headline figure, one table per axis and the
claims' verdicts; the figures, the claims' evidence, the comparisons and the methods follow;
the long tables close it, in an appendix.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd
import weasyprint
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from analysis import anchors, plots, tables
from analysis.aggregate import METHODS_TEXT, ok_runs
from analysis.claims import Verdict, evaluate_claims
from analysis.load import Study, load_attention, load_study, save_frames
from analysis.seeds import SEED_CI_TEXT
from analysis.tables import Table

TEMPLATES = Path(__file__).with_name("templates")
MLFLOW_UI = "http://127.0.0.1:5000"
PNG_DPI = 120
MAX_FIGURE_HEIGHT_IN = 8.5  # leaves an A4 page room for the caption
HEADLINE = "acc_vs_length"  # the figure shown second, right after the question
SECTIONS = {  # anchor: (number, title), in the order of the report
    "question": ("1.", "The question"),
    "headline": ("2.", "Exact match against length"),
    "by-axis": ("3.", "Results by axis"),
    "claims": ("4.", "Claims: verdicts"),
    "completeness": ("5.", "Completeness"),
    "figures": ("6.", "Figures"),
    "evidence": ("7.", "Claims: rules and evidence"),
    "compare": ("8.", "How this compares"),
    "methods": ("9.", "Methods"),
    "appendix": ("Appendix.", "Long tables"),
    "appendix-configurations": ("A.", "Summary per configuration"),
    "appendix-cost": ("B.", "Cost"),
    "appendix-statistics": ("C.", "Pairwise statistics"),
    "appendix-runs": ("D.", "Runs"),
}
SELECTION_RULE = (
    "Model selection uses in-distribution data only: every val_every steps the model is "
    "validated on fresh examples of the training lengths (train_min_len..train_max_len, a "
    "fixed validation seed) and the checkpoint with the best validation exact match is kept; "
    "early stopping (patience, stop_at_val_acc) reads the same validation. No longer "
    "sequence is seen before the final evaluation, which decodes greedily eval_samples fresh "
    "examples of every length 1..eval_max_len drawn from one fixed test seed, the same "
    "examples for every variant (so comparisons can be paired)."
)
NUMERIC = re.compile(r"^[-+−–]?[\d.,]+( \[|$| \(n = 1\)$)|^–$")  # cells aligned right
VERDICT_CLASS = {"supported": "ok", "refuted": "bad", "mixed": "mid", "not tested": "none"}
AXIS_PHRASES = {
    "position": "the positional encoding",
    "score": "the score function",
    "heads": "the number of heads",
    "arch": "the architecture",
}
CLAIM_COLUMNS = ("claim", "verdict", "text", "rule", "evidence", "figure_label", "note")


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

    @property
    def width_in(self) -> float:
        """The width to show the figure at (inches): its own, or less where it would be
        taller than MAX_FIGURE_HEIGHT_IN; never wider than the page (the stylesheet's)."""
        width, height = self.figure.get_size_inches()
        return float(min(width, MAX_FIGURE_HEIGHT_IN * width / height))


def build_report(
    study: str, out_dir: Path | str | None = None, tracking_uri: str | None = None
) -> tuple[Path, Path]:
    """Write report.html, report.pdf, tables/*.csv and the tidy CSVs into ``out_dir``
    (default reports/<study>), log the reports and tables to the study's parent run; return
    the reports' paths. Raises ``analysis.load.StudyError`` when the study has no trial runs."""
    data = load_study(study, tracking_uri)
    out = Path(out_dir) if out_dir is not None else Path("reports") / study
    save_frames(data, out)
    figures = make_figures(data)
    verdicts = evaluate_claims(data.runs, data.lengths, data.positions)
    context = report_context(data, figures, verdicts)
    write_tables(out, report_tables(context))
    html_path, pdf_path = out / "report.html", out / "report.pdf"
    html_path.write_text(render_html(context), encoding="utf-8")
    write_pdf(html_path, pdf_path)
    log_report(data, [html_path, pdf_path], out / "tables")
    return html_path, pdf_path


SEED_BANDS = (
    "Bands and bars: 95% percentile-bootstrap CI over seeds (each seed's runs averaged "
    "first); none where a series has one seed (the legend then says n = 1, no interval)."
)
FIGURES = (  # every figure the report can hold, in order; each is left out without data
    FigureSpec(
        HEADLINE,
        "Exact match by input length",
        "Exact match (fraction of sequences fully correct) at every evaluated length, one "
        "line per positional encoding (its runs averaged over score functions and head "
        "counts), per task (rows) and architecture (columns); grey: the training lengths. "
        f"{SEED_BANDS}",
        lambda s: plots.accuracy_vs_length(s.lengths),
    ),
    FigureSpec(
        "score_vs_length",
        "Exact match by input length per score function",
        "As Figure 1, one line per score function of the transformers (averaged over "
        f"positional encodings and head counts). {SEED_BANDS}",
        lambda s: plots.accuracy_vs_length(s.lengths, hue="score"),
    ),
    FigureSpec(
        "length_heatmap",
        "Exact match by length and variant",
        "Mean exact match over seeds at every evaluated length (columns) for every variant "
        "(rows: positional encoding, with the score function where the study varies it; head "
        "counts averaged), one panel per task and architecture, the view of Delétang et al. "
        "2023; the white line ends the training lengths.",
        lambda s: plots.length_heatmap(s.lengths),
    ),
    FigureSpec(
        "token_acc_vs_length",
        "Token accuracy by input length",
        f"As Figure 1, for per-token accuracy. {SEED_BANDS}",
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
        "In- and out-of-distribution exact match against the number of heads, one row per "
        "task, architecture and model width (d_model fixed within a row), per positional "
        f"encoding. {SEED_BANDS}",
        lambda s: plots.heads_effect(s.runs),
    ),
    FigureSpec(
        "arch",
        "Architecture",
        f"Exact match per architecture and encoding, one row per task. {SEED_BANDS}",
        lambda s: plots.architecture_effect(s.runs),
    ),
    FigureSpec(
        "rnn",
        "RNN baselines beside the transformers",
        "Exact match by length per architecture (transformer variants averaged), one panel "
        f"per task; grey: the training lengths. {SEED_BANDS}",
        lambda s: plots.architectures_vs_length(s.lengths),
    ),
    FigureSpec(
        "per_position",
        "Accuracy by target position (claim C1)",
        "Token accuracy at each output position, averaged over the lengths of the "
        "training range (left) and beyond it (right), mean over runs, one row per task and "
        "architecture; RNN baselines in black and grey.",
        lambda s: plots.per_position_accuracy(s.positions),
    ),
    FigureSpec(
        "training_curves",
        "Training curves",
        "Training loss (log scale) and in-distribution validation exact match "
        "against the training step, mean over runs per encoding, one row per task and "
        "architecture.",
        lambda s: plots.training_curves(s.curves),
    ),
    FigureSpec(
        "cost",
        "Cost",
        "Parameters, time per training step and activation memory of one training step "
        "(tensors saved for backward) per score function and encoding, one row per task and "
        f"architecture. {SEED_BANDS}",
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
        "as Kazemnejad et al. 2023.",
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
    """Everything the template shows, as plain values and Tables."""
    run_url = _study_meta(data)["run_url"]
    fixed, varied = tables.settings(data.runs, list(data.param_names))
    done = tables.completeness(data.runs, data.attempts, data.grid_size, data.grid)
    done |= {k: _linked(done[k], run_url) for k in ("unfinished", "bad")}
    return {
        "study": _study_meta(data),
        "sections": SECTIONS,
        "question": question(data),
        "seed_ci": SEED_CI_TEXT,
        "headline": next((f for f in figures if f.key == HEADLINE), None),
        "axes": [tables.axis_table(data.runs, axis) for axis in tables.AXES],
        "claims": [_claim_row(v, figures) for v in verdicts],
        "completeness": done,
        "figures": [f for f in figures if f.key != HEADLINE],
        "comparisons": [_comparison(block) for block in anchors.comparisons(data.runs)],
        "methods": _methods(data, fixed, varied),
        "appendix": {
            "configurations": tables.configuration_table(data.runs),
            "cost": tables.cost_table(data.runs),
            "statistics": tables.statistics_tables(data.runs),
            "runs": _linked(tables.attempts_table(data.attempts, data.runs), run_url),
        },
    }


def question(data: Study) -> str:
    """The study's question in one paragraph, with its tasks, lengths and axes."""
    runs = data.runs
    first = int(runs["train_min_len"].min()) if "train_min_len" in runs else 1
    varied = [phrase for axis, phrase in AXIS_PHRASES.items() if runs[axis].nunique() > 1]
    design = (
        f"varies {_and(varied)} and trains every combination" if varied else "trains one variant"
    )
    return (
        "Which attention mechanisms let a model trained on inputs of length "
        f"{first}–{int(runs['train_max_len'].max())} solve the same task on longer ones, "
        f"up to length {int(runs['eval_max_len'].max())}? This study {design} on "
        f"{_and(sorted(runs['task'].unique()))} with {runs['seed'].nunique()} seed(s) each, "
        "and measures exact match, the fraction of sequences fully correct, at every length; "
        "lengths beyond training are out of distribution (OOD)."
    )


def _and(items: list[str]) -> str:
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def render_html(context: dict) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.tests["numeric"] = lambda value: bool(NUMERIC.match(str(value)))
    return env.get_template("report.html.j2").render(**context)


def report_tables(context: dict) -> list[Table]:
    """Every table the report shows, the claims included."""
    claims = [{c: row[c] for c in CLAIM_COLUMNS} for row in context["claims"]]
    done, methods, appendix = context["completeness"], context["methods"], context["appendix"]
    return [
        *context["axes"],
        Table("claims", "Claims", list(CLAIM_COLUMNS), claims),
        done["unfinished"],
        done["bad"],
        *(block["table"] for block in context["comparisons"]),
        methods["varied"],
        methods["fixed"],
        appendix["configurations"],
        appendix["cost"],
        *appendix["statistics"],
        appendix["runs"],
    ]


def write_tables(out: Path, shown: list[Table]) -> None:
    """Each table as ``out/tables/<key>.csv``, its displayed values."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    for table in shown:
        pd.DataFrame(table.rows, columns=table.columns).to_csv(out / table.csv, index=False)


def write_pdf(html: Path, pdf: Path) -> None:
    """The HTML typeset for print (its ``@page`` and ``@media print`` rules) by WeasyPrint:
    the same sections, figures, tables and links; page numbers and a table of contents."""
    for name in ("weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    weasyprint.HTML(filename=html).write_pdf(pdf)


def log_report(data: Study, paths: list[Path], folder: Path) -> None:
    """Attach the reports and their tables to the study's parent run (nothing to do
    without one)."""
    run_id = data.parent.get("run_id")
    if run_id is None:
        return
    client = MlflowClient(tracking_uri=data.tracking_uri)
    for path in paths:
        client.log_artifact(run_id, str(path))
    client.log_artifacts(run_id, str(folder), folder.name)


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


def _linked(table: Table, run_url: str) -> Table:
    return replace(table, links={"run id": run_url})


def _comparison(block: dict) -> dict:
    """A published comparison (``analysis.anchors``) with its rows as a Table."""
    key = "compare_" + re.sub(r"[^a-z0-9]+", "_", block["title"].lower()).strip("_")[:40]
    return block | {"table": Table(key, block["title"], block["columns"], block["rows"])}


def _claim_row(verdict: Verdict, figures: list[ReportFigure]) -> dict:
    shown = {f.key: f for f in figures}
    figure = shown.get(verdict.figure)
    untested = verdict.verdict == "not tested"
    return {
        "claim": verdict.claim,
        "text": verdict.text,
        "verdict": verdict.verdict,
        "verdict_class": VERDICT_CLASS.get(verdict.verdict, "none"),
        "rule": verdict.rule,
        "evidence": verdict.evidence,
        "note": f"not tested by this study — run preset {verdict.needs}" if untested else "",
        "figure_key": figure.key if figure else None,
        "figure_label": f"Figure {figure.number}" if figure else "no figure (no runs for it)",
    }


def _methods(data: Study, fixed: Table, varied: Table) -> dict:
    versions = {
        c: sorted(data.runs[c].dropna().unique()) for c in data.runs if c.startswith("version.")
    }
    return {
        "fixed": fixed,
        "varied": varied,
        "seeds": ", ".join(str(s) for s in sorted(data.runs["seed"].dropna().unique())),
        "selection": SELECTION_RULE,
        "statistics": METHODS_TEXT,
        "versions": {k.removeprefix("version."): ", ".join(v) for k, v in versions.items()},
        "commits": sorted(data.runs["git_commit"].dropna().unique()),
    }
