"""No secret in anything shown or stored. URLs that carry a password (in the user part or
the query string) go through every command, with good and bad input: the password is in
no printed line, no file the commands write (both stores, artifacts, the report, the
results record, an estimate's sample); the URLs are shown with the password masked.

What `redact` makes of each URL form is in test_redact.py; the PostgreSQL and `mlflow
server` forms of the same check are in test_scaleout.py."""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from builders import TINY_STUDY, study_file
from commands import ATTNSTUDY, SECRET, assert_one_error_line, attnstudy, clean_env
from servers import PORT_TAKEN, _answers, free_port, on_a_free_port, stop, wait_for

from attnstudy.schema import MODEL_ARTIFACT

SECRET_FORMS = (SECRET, quote(SECRET, safe=""))
SPEC = TINY_STUDY | {"name": "secretive"}


def closed_port() -> int:
    """A port nothing listens on (free a moment ago): connections are refused."""
    return free_port()


def assert_no_secret(text: str) -> None:
    for form in SECRET_FORMS:
        assert form not in text, f"secret {form!r} shown:\n{text[-3000:]}"


@pytest.fixture(scope="module")
def secretive(tmp_path_factory):
    """The tiny study run and reported on SQLite stores whose URLs carry a password in the
    query string (SQLite ignores it: the URL still works). Returns (folder, spec, storage
    URL, tracking URI, what the commands printed)."""
    root = tmp_path_factory.mktemp("secretive")
    spec = study_file(root, SPEC)
    runs = root / "runs"
    storage = f"sqlite:///{runs}/optuna.db?password={SECRET}"
    tracking = f"sqlite:///{runs}/mlflow.db?password={SECRET}"
    stores = ["--runs-dir", runs, "--storage", storage, "--tracking-uri", tracking]
    printed = []
    status, out = attnstudy("study", "run", spec.path, *stores, "--workers", "1")
    printed.append(out)
    assert status == 0, out
    report = ["report", "--study", spec.name, "--out", root / "report", "--tracking-uri", tracking]
    status, out = attnstudy(*report)
    printed.append(out)
    assert status == 0, out
    return root, spec, storage, tracking, "\n".join(printed)


def test_study_run_and_report_print_no_secret(secretive):
    *_, printed = secretive
    assert_no_secret(printed)


def test_study_status_prints_no_secret(secretive):
    root, spec, storage, _, _ = secretive
    status, out = attnstudy(
        "study", "status", spec.path, "--runs-dir", root / "runs", "--storage", storage
    )
    assert status == 0, out
    assert_no_secret(out)


def test_the_grid_change_refusal_masks_the_storage_url(secretive):
    root, spec, storage, tracking, _ = secretive
    changed = study_file(root / "report", SPEC | {"axes": SPEC["axes"] | {"heads": [1]}})
    stores = ["--runs-dir", root / "runs", "--storage", storage, "--tracking-uri", tracking]
    status, out = attnstudy("study", "run", changed.path, *stores)
    assert_one_error_line(status, out, shows="optuna.db?password=***")
    assert_no_secret(out)


def test_report_of_an_unknown_study_masks_the_tracking_uri(secretive):
    _, _, _, tracking, _ = secretive
    status, out = attnstudy("report", "--study", "nope", "--tracking-uri", tracking)
    assert_one_error_line(status, out, shows="mlflow.db?password=***")
    assert_no_secret(out)


def test_ui_of_an_unknown_study_masks_the_tracking_uri(secretive):
    root, _, _, tracking, _ = secretive
    status, out = attnstudy(
        "ui", "--study", "nope", "--runs-dir", root / "runs", "--tracking-uri", tracking
    )
    assert_one_error_line(status, out, shows="mlflow.db?password=***")
    assert_no_secret(out)


def _start_ui(study: str, runs: Path, tracking: str, log: Path, port: int):
    argv = [ATTNSTUDY, "ui", "--study", study, "--runs-dir", runs, "--tracking-uri", tracking]
    ui = subprocess.Popen(
        [*argv, "--port", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=clean_env(),
    )
    try:  # the timeout only bounds a hang: `mlflow ui` took up to 17 s to start under load
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), ui, log, 300, "attnstudy ui")
    except BaseException:
        stop(ui, signal.SIGTERM)
        raise
    return ui


def test_ui_serving_a_store_prints_no_secret(secretive, tmp_path):
    root, spec, _, tracking, _ = secretive
    log = tmp_path / "ui.log"
    ui = on_a_free_port(functools.partial(_start_ui, spec.name, root / "runs", tracking, log))
    stop(ui, signal.SIGTERM)
    out = log.read_text()
    assert "mlflow.db?password=***" in out and PORT_TAKEN not in out, out
    assert_no_secret(out)


def test_estimate_with_a_secret_tracking_uri_in_the_environment_prints_no_secret(secretive):
    root, spec, _, tracking, _ = secretive
    env = clean_env() | {"MLFLOW_TRACKING_URI": tracking}
    status, out = attnstudy(
        "study", "estimate", spec.path, "--sample", "1", "--csv", root / "estimate.csv", env=env
    )
    assert status == 0, out
    assert_no_secret(out)


def bad_urls() -> list[tuple[str, list[str]]]:
    """(the part of the URL the error line shows, options) of URLs with secrets that no
    store answers at."""
    port = closed_port()
    pg = f"postgresql+psycopg2://attnstudy:{SECRET}@127.0.0.1:{port}/optuna"
    return [
        (f"attnstudy:***@127.0.0.1:{port}", ["--storage", pg]),
        (
            "sslpassword=***",
            [
                "--storage",
                f"postgresql+psycopg2://attnstudy@127.0.0.1:{port}/optuna?sslpassword={SECRET}",
            ],
        ),
        (
            f"worker1:***@127.0.0.1:{port}",
            ["--tracking-uri", f"http://worker1:{SECRET}@127.0.0.1:{port}"],
        ),
        ("token=***", ["--tracking-uri", f"http://127.0.0.1:{port}/?token={SECRET}"]),
        ("u:***@127.0.0.1", ["--tracking-uri", f"nosuchdb://u:{SECRET}@127.0.0.1:{port}/mlflow"]),
    ]


BAD_URL_KINDS = ["postgres-password", "postgres-sslpassword", "http-user", "http-token", "scheme"]


@pytest.mark.parametrize(("shows", "options"), bad_urls(), ids=BAD_URL_KINDS)  # ids: no port
def test_bad_store_urls_are_one_masked_error_line_for_every_command(secretive, shows, options):
    root, spec, storage, tracking, _ = secretive
    runs = ["--runs-dir", root / "bad-runs"]
    if options[0] == "--storage":
        commands = [
            ["study", "run", spec.path, *runs, "--tracking-uri", tracking, *options],
            ["study", "status", spec.path, *runs, *options],
        ]
    else:
        commands = [
            ["study", "run", spec.path, *runs, "--storage", storage, *options],
            ["report", "--study", spec.name, "--out", root / "bad-report", *options],
            ["ui", "--study", spec.name, *runs, *options],
        ]
    for command in commands:
        status, out = attnstudy(*command, timeout=120)
        assert_one_error_line(status, out, shows=shows)
        assert_no_secret(out)
    assert not (root / "bad-runs").exists() and not (root / "bad-report").exists()


def test_no_file_written_holds_the_secret(secretive, tmp_path):
    """Both stores (SQLite files), the artifacts, the report and its tables, the results
    record and the estimate's sample: read byte for byte."""
    root, *_ = secretive
    files = [p for p in root.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"optuna.db", "mlflow.db", "report.html", "report.pdf", "secretive.md"} <= names
    assert MODEL_ARTIFACT in names  # the artifacts
    pdftotext = shutil.which("pdftotext")  # the PDF's text is compressed: read it as text
    if pdftotext:
        text = subprocess.run([pdftotext, root / "report" / "report.pdf", "-"], capture_output=True)
        assert text.returncode == 0 and b"secretive" in text.stdout
        files.append(tmp_path / "report.txt")
        files[-1].write_bytes(text.stdout)
    for path in files:
        data = path.read_bytes()
        for form in SECRET_FORMS:
            assert form.encode() not in data, f"{path} holds the secret"
