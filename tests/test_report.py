"""The report, built from a small real study (real training, real SQLite MLflow store) and
checked as a reader would: opened in headless Chromium, the PDF rendered page by page."""

from __future__ import annotations

import re
import shutil
import subprocess

import pandas as pd
import pytest
from chromium import open_page
from mlflow.tracking import MlflowClient
from tiny_study import grid_key, make_study

from analysis.anchors import KAZEMNEJAD_OOD, deletang, kazemnejad
from analysis.claims import CLAIMS as CLAIMS_SPEC
from analysis.claims import VERDICTS
from analysis.load import StudyError, load_study
from analysis.report import FIGURES
from analysis.tables import completeness
from attnstudy.cli import main

STUDY = "tiny-report"
DECODER = [  # two encodings x two seeds at 2 heads, and 1 head for one encoding
    {"arch": "decoder", "position": p, "heads": h, "seed": s}
    for p, h in (("sinusoidal", 2), ("learned", 2), ("sinusoidal", 1))
    for s in (0, 1)
]
RNN = [{"arch": "rnn", "position": "none", "heads": 1, "seed": s} for s in (0, 1)]
DIVERGED = ({"arch": "decoder", "position": "none", "heads": 1, "seed": 0},)
NEVER_RUN = [{"arch": "decoder", "position": "none", "heads": s + 1, "seed": 1} for s in (0, 1)]
CLAIMS = list(CLAIMS_SPEC)
PATIENCE = 600  # s; bounds a hang only: Chromium 2.2 s, pdftoppm 0.3 s measured at load 6


def ensure(binary: str, package: str) -> str:
    """The path of ``binary``, installing the Debian ``package`` when missing and possible;
    skips the test (saying why) when it cannot be had."""
    found = shutil.which(binary)
    if found is None and shutil.which("apt-get"):
        for command in (
            ["apt-get", "install", "-y", "--no-install-recommends", package],
            ["sh", "-c", f"apt-get update && apt-get install -y {package}"],
        ):
            if subprocess.run(command, capture_output=True, timeout=900).returncode == 0:
                break
        found = shutil.which(binary)
    if found is None:
        pytest.skip(f"{binary} is not installed and `apt-get install {package}` failed")
    return found


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A half-finished study: 8 trained trials, one diverged, one killed attempt (later
    rerun), two grid points never run; the report built through the CLI."""
    root = tmp_path_factory.mktemp("study")
    grid = [*DECODER, *RNN]
    uri = make_study(root, STUDY, grid, diverged=DIVERGED, killed=(DECODER[0],))
    client = MlflowClient(uri)
    parent = load_study(STUDY, uri).parent["run_id"]
    keys = [grid_key(p) for p in (*grid, *DIVERGED, *NEVER_RUN)]
    client.log_dict(parent, keys, "grid.json")
    out = root / "report"
    assert main(["report", "--study", STUDY, "--tracking-uri", uri, "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    return {"uri": uri, "out": out, "html": html, "parent": parent, "client": client}


def test_report_opens_offline_with_every_image_loaded_and_no_console_error(study):
    browser = ensure("chromium", "chromium")
    page = open_page(study["out"] / "report.html", browser, timeout=PATIENCE)
    figures = study["html"].count("<figure")
    assert figures >= 9
    assert len(page.images) == figures
    assert all(complete and width > 0 for _, complete, width in page.images), page.images
    assert page.errors == []
    assert all(url.startswith(("file:", "data:")) for url in page.requests), page.requests


def test_browser_check_catches_a_broken_image_and_a_console_error(tmp_path):
    browser = ensure("chromium", "chromium")
    broken = tmp_path / "broken.html"
    broken.write_text('<img alt="gone" src="missing.png"><script>console.error("boom")</script>')
    page = open_page(broken, browser, timeout=PATIENCE)
    assert page.images == [("gone", True, 0)]
    assert any("boom" in e for e in page.errors)


def test_pdf_has_title_summary_figure_and_claims_pages(study, tmp_path):
    pdftoppm = ensure("pdftoppm", "poppler-utils")
    subprocess.run(
        [pdftoppm, "-r", "12", "-png", str(study["out"] / "report.pdf"), str(tmp_path / "p")],
        check=True,
        timeout=PATIENCE,
    )
    pages = sorted(tmp_path.glob("p-*.png"))
    title, summary, claims = 1, 1, 4  # 5 configurations fit one page; 12 claims, 3 a page
    assert len(pages) == title + summary + study["html"].count("<figure") + claims
    assert all(p.stat().st_size > 0 for p in pages)


def test_html_is_self_contained(study):
    html = study["html"]
    assert not re.search(r"<(script|link|iframe)\b", html)
    assert not re.search(r"""(src|url)\s*[=(]\s*["']?(https?:)?//""", html)
    assert html.count('src="data:image/png;base64,') == html.count("<img")


def test_every_claim_gets_a_verdict_rule_and_evidence(study):
    html = study["html"]
    for claim in CLAIMS:
        block = html.split(f'<div class="claim" id="{claim}">')[1].split("</div>")[0]
        verdict = re.search(r'class="verdict \w+">([^<]+)<', block).group(1)
        assert verdict.split(" (n = ")[0] in VERDICTS
        assert "Rule.</strong>" in block and "Evidence.</strong>" in block
        assert "Primary effect.</strong>" in block and "runs kept" in block
        if verdict.startswith("inconclusive"):
            assert "tested by" in block


def test_half_finished_study_lists_missing_and_diverged_points(study):
    html = study["html"]
    assert "missing: <strong>2</strong>" in html
    for point in NEVER_RUN:
        assert f"<li><code>{grid_key(point)}</code></li>" in html
    assert grid_key(DIVERGED[0]) in html and "loss = nan" in html


def test_latest_finished_trial_stands_for_its_grid_point(study):
    data = load_study(STUDY, study["uri"])
    assert data.runs["grid_key"].is_unique
    assert len(data.runs) == len(DECODER) + len(RNN) + len(DIVERGED)
    killed = data.attempts[data.attempts["status"] == "killed"]
    assert killed["grid_key"].tolist() == [grid_key(DECODER[0])]
    assert not data.runs["run_id"].isin(killed["run_id"]).any()


def test_tidy_frames_are_saved_beside_the_report(study):
    runs = pd.read_csv(study["out"] / "runs.csv")
    lengths = pd.read_csv(study["out"] / "lengths.csv")
    positions = pd.read_csv(study["out"] / "positions.csv")
    curves = pd.read_csv(study["out"] / "curves.csv")
    ok = runs[runs["status"] == "ok"]
    assert set(runs["status"]) == {"ok", "diverged"}
    assert len(lengths) == len(ok) * 8  # every length 1..eval_max_len
    assert set(positions["split"]) == {"id", "ood"}
    assert {"train_loss", "val_seq_acc"} <= set(curves["metric"])
    assert ok["peak_mem_mb"].gt(0).all()


def test_reports_are_logged_to_the_parent_run(study):
    names = {a.path for a in study["client"].list_artifacts(study["parent"])}
    assert {"report.html", "report.pdf"} <= names


def test_empty_or_unknown_study_is_one_clear_error(study, capsys):
    client = study["client"]
    experiment = client.create_experiment("empty-study")
    client.create_run(experiment, tags={"attnstudy.role": "study"})
    with pytest.raises(StudyError, match="'empty-study' has no trial runs"):
        load_study("empty-study", study["uri"])
    assert main(["report", "--study", "nope", "--tracking-uri", study["uri"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no study named 'nope'" in err and STUDY in err


def test_missing_store_is_not_created(tmp_path):
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    with pytest.raises(StudyError, match="no MLflow store"):
        load_study("quick", uri)
    assert not (tmp_path / "absent.db").exists()


def synthetic_runs(**fixed) -> pd.DataFrame:
    """Finished runs of every Kazemnejad encoding on copy, three seeds each."""
    base = {"status": "ok", "arch": "decoder", "score": "scaled_dot", "randomized": False}
    base |= {"heads": 4, "d_model": 64, "n_layers": 2, "lr": 1e-3, "steps": 3000}
    base |= {"train_max_len": 20, "eval_max_len": 40, "weight_decay": 0.01, "batch_size": 64}
    rows = [
        base
        | fixed
        | {"task": "copy", "position": p, "seed": s, "run_id": f"{p}{s}"}
        | {"ood_seq_acc": 0.1 * i, "ood_token_acc": 0.5, "id_seq_acc": 1.0}
        for i, p in enumerate(KAZEMNEJAD_OOD["copy"])
        for s in range(3)
    ]
    return pd.DataFrame(rows)


def test_kazemnejad_setting_puts_our_means_beside_theirs():
    block = kazemnejad(synthetic_runs())
    assert block["matched"]
    copy = {r["encoding"]: r for r in block["rows"] if r["task"] == "copy"}
    assert copy["t5"]["theirs (mean of 3)"] == "0.420"
    assert copy["t5"]["ours mean [95% CI]"].startswith("0.100 [")
    assert copy["t5"]["seeds"] == 3
    assert copy["t5"]["ours ID"] == "1.000"  # whether the training lengths were learnt
    reverse = {r["encoding"]: r for r in block["rows"] if r["task"] == "reverse"}
    assert reverse["none"]["ours ID"] == "–"  # reverse was not run
    assert "Setup differences" in block["note"] and "lr 0.001" in block["note"]


def test_other_settings_show_published_numbers_and_name_the_preset():
    block = kazemnejad(synthetic_runs(train_max_len=16, eval_max_len=64))
    assert not block["matched"]
    assert "replicate-kazemnejad" in block["note"]
    assert all("ours mean [95% CI]" not in row for row in block["rows"])


def test_missing_grid_points_are_listed_when_the_grid_is_a_full_product():
    keys = [f"heads={h},position={p}" for h in (1, 2) for p in ("learned", "rope")]
    runs = pd.DataFrame(
        {
            "grid_key": keys[:3],
            "status": ["ok", "ok", "diverged"],
            "reason": ["", "", "nan loss"],
            "run_id": ["a", "b", "c"],
        }
    )
    attempts = pd.DataFrame(
        {
            "grid_key": keys,
            "status": ["ok", "ok", "diverged", "killed"],
            "run_id": ["a", "b", "c", "d"],
        }
    )
    done = completeness(runs, attempts, grid_size=4, grid=None)
    assert done["missing"] == [keys[3]]
    assert [r["status"] for r in done["unfinished"]] == ["killed"]
    assert [r["grid point"] for r in done["bad"]] == [keys[2]]
    assert completeness(runs, attempts, grid_size=6, grid=None)["missing"] is None


def test_every_claim_points_to_a_figure_the_report_can_draw():
    assert {spec.figure for spec in CLAIMS_SPEC.values()} <= {f.key for f in FIGURES}


def test_deletang_setting_reports_the_randomization_gain_beside_ruoss():
    runs = synthetic_runs(arch="encoder", train_max_len=40, eval_max_len=80)
    shuffled = runs.assign(randomized=True, ood_token_acc=0.7)
    block = deletang(pd.concat([runs, shuffled], ignore_index=True))
    gain = block["rows"][-1]
    assert block["matched"]
    assert gain["ours mean [95% CI]"] == "20.0 [20.0, 20.0]"
    assert gain["theirs"].startswith("+12.0")
