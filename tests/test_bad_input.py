"""Bad input to `attnstudy train` and `attnstudy study run`: one line on stderr naming what is
wrong and what is allowed, exit 2, and nothing written to either store."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml
from test_reliability import ATTNSTUDY
from test_study import TINY

from attnstudy.cli import main

FIXED = TINY["fixed"]


def train(*args: str):
    return ("train", None, args)


def study(change: dict | str, *args: str):
    """`study run` of TINY with `change` (a dict merged over it, or the raw file text)."""
    return ("study", change, args)


def blocks(**named: dict) -> str:
    """The text of a study file of TINY's settings with these blocks (in this order)."""
    blocks = {name: {"tasks": ["copy"], "axes": {}} | block for name, block in named.items()}
    return yaml.safe_dump({"name": "tiny", "fixed": FIXED, "blocks": blocks}, sort_keys=False)


CASES = {
    "unknown score": (train("--score", "dott"), "score: unknown value 'dott'; allowed: dot,"),
    "unknown position": (train("--position", "rotary"), "position: unknown value 'rotary'; all"),
    "unknown task": (train("--task", "sort2"), "task: unknown value 'sort2'; allowed: copy"),
    "unknown arch": (train("--arch", "gpt"), "arch: unknown value 'gpt'; allowed: "),
    "heads not dividing d_model": (
        train("--d-model", "16", "--heads", "3"),
        "heads: must divide d_model=16; allowed: 1, 2, 4, 8, 16; got 3",
    ),
    "negative length": (train("--train-min-len", "-1"), "train_min_len: must be >= 1, got -1"),
    "inverted lengths": (
        train("--train-min-len", "8", "--train-max-len", "4"),
        "train_max_len: must be >= train_min_len=8, got 4",
    ),
    "eval length below training": (
        train("--train-max-len", "8", "--eval-max-len", "4"),
        "eval_max_len: must be 0 (= 4 x train_max_len) or >= train_max_len=8, got 4",
    ),
    "wrong type on the command line": (train("--steps", "many"), "steps: expected int, got 'many'"),
    "malformed YAML": (study("name: [tiny\n"), "not valid YAML: line 2, column 1: expected ','"),
    "missing study file": (study(None), "missing.yaml: cannot read: No such file or directory"),
    "unknown top-level key": (study({"axis": {}}), "unknown key 'axis'; allowed: name, desc"),
    "unknown setting": (
        study({"fixed": FIXED | {"d_modle": 16}}),
        "fixed: unknown setting 'd_modle'; allowed: train_min_len,",
    ),
    "wrong type in YAML": (
        study({"fixed": FIXED | {"steps": "many"}}),
        "fixed.steps: expected int, got 'many'",
    ),
    "unknown value on an axis": (
        study({"axes": {"score": ["dott"]}}),
        "axes.score: unknown value 'dott'; allowed: dot,",
    ),
    "unknown task in a study": (
        study({"tasks": ["sort2"]}),
        "tasks: unknown task 'sort2'; allowed: copy",
    ),
    "study eval length not beyond training": (
        study({"fixed": FIXED | {"eval_max_len": 3}}),
        "fixed.eval_max_len: must exceed train_max_len",
    ),
    "study name with path characters": (
        study({"name": "../evil"}),
        "name: expected letters, digits, '_', '.' or '-', got '../evil'",
    ),
    "no workers": (study({}, "--workers", "0"), "--workers: must be >= 1, got 0"),
    "no threads": (study({}, "--threads", "0"), "--threads: must be >= 1, got 0"),
    "grace not above heartbeat": (
        study({}, "--heartbeat", "5", "--grace", "5"),
        "need 1 <= heartbeat < grace (seconds), got 5 and 5",
    ),
    "storage server down": (
        study({}, "--storage", "postgresql+psycopg2://me:secret@127.0.0.1:9/optuna"),
        "--storage postgresql+psycopg2://me:***@127.0.0.1:9/optuna: cannot open it (connection",
    ),
    "storage not a URL": (
        study({}, "--storage", "optuna.db"),
        "--storage optuna.db: cannot open it (Could not parse SQLAlchemy URL",
    ),
    "storage in a missing folder": (
        study({}, "--storage", "sqlite:///TMP/nowhere/optuna.db"),
        "nowhere/optuna.db: folder TMP/nowhere does not exist; allowed: a SQLite file in an",
    ),
    "tracking server unreachable": (
        study({}, "--tracking-uri", "http://127.0.0.1:9"),
        "--tracking-uri http://127.0.0.1:9: no MLflow server answers there (",
    ),
    "tracking scheme unknown": (
        study({}, "--tracking-uri", "nosuch://x"),
        "--tracking-uri nosuch://x: MLflow cannot use it (unknown scheme); allowed: http",
    ),
    "exclusions remove every point": (
        study({"exclude": [{"score": ["dot", "scaled_dot"]}]}),
        "exclude: the exclusions remove all 4 grid points; at least one must remain",
    ),
    "grid keys beside blocks": (
        study(yaml.safe_dump(TINY | {"blocks": {}})),
        "tasks: not allowed beside 'blocks'; each block has its own tasks",
    ),
    "no blocks": (study(blocks()), "blocks: expected at least one block"),
    "blocks not a mapping": (
        study("name: tiny\nblocks: [a, b]\n"),
        "blocks: expected a mapping of block name: block, got ['a', 'b']",
    ),
    "block name with path characters": (
        study(blocks(**{"../evil": {}})),
        "blocks: block name: expected letters, digits, '_', '.' or '-', got '../evil'",
    ),
    "unknown key in a block": (
        study(blocks(rnn={"axis": {}})),
        "blocks.rnn: unknown key 'axis'; allowed: description, tasks, fixed, axes, exclude, sol",
    ),
    "block without tasks": (
        study("name: tiny\nblocks: {rnn: {axes: {}}}\n"),
        "blocks.rnn: missing key 'tasks'",
    ),
    "unknown value on a block's axis": (
        study(blocks(rnn={"axes": {"heads": [3]}})),
        "blocks.rnn.axes.heads: must divide d_model=16; allowed: 1, 2, 4, 8, 16; got 3",
    ),
    "setting both fixed and an axis in a block": (
        study(blocks(rnn={"fixed": {"heads": 2}, "axes": {"heads": [1, 2]}})),
        "blocks.rnn.axes.heads: also in blocks.rnn.fixed; a setting is either fixed or an axis",
    ),
    "a block's exclusions remove every point": (
        study(blocks(a={}, rnn={"axes": {"heads": [1, 2]}, "exclude": [{"heads": [1, 2]}]})),
        "blocks.rnn.exclude: the exclusions remove all 2 grid points; at least one must remain",
    ),
    "solvable not a boolean": (
        study(blocks(enc={"solvable": "no"})),
        "blocks.enc.solvable: expected true or false, got 'no'",
    ),
    "blocks disagree on a shared point's solvability": (
        study(blocks(a={}, b={"solvable": False})),
        "blocks.b.solvable: grid point b/task=copy is also a/task=copy, declared solvable: true",
    ),
}


def argv_of(case, tmp_path) -> list[str]:
    kind, change, args = case
    args = [a.replace("TMP", str(tmp_path)) for a in args]
    if kind == "train":
        return ["train", *args, "--quiet"]
    path = tmp_path / ("missing.yaml" if change is None else "study.yaml")
    if change is not None:
        text = change if isinstance(change, str) else yaml.safe_dump(TINY | change)
        path.write_text(text)
    return ["study", "run", str(path), "--runs-dir", str(tmp_path / "runs"), *args]


def check_one_line_and_nothing_written(code: int, err: str, expected: str, tmp_path) -> None:
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("attnstudy: error: ")
    assert expected.replace("TMP", str(tmp_path)) in lines[0]
    assert {p.name for p in tmp_path.iterdir()} <= {"study.yaml"}  # no runs/, no store


@pytest.fixture
def clean(tmp_path, monkeypatch):
    """Work in an empty directory, with no tracking URI from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.mark.parametrize("case,expected", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_clear_line_exit_2_and_writes_nothing(case, expected, clean, capsys):
    code = main(argv_of(case, clean))
    check_one_line_and_nothing_written(code, capsys.readouterr().err, expected, clean)


@pytest.mark.parametrize("name", ["malformed YAML", "tracking server unreachable"])
def test_bad_input_fails_fast_from_the_shell(name, clean):
    case, expected = CASES[name]
    start = time.monotonic()
    done = subprocess.run(
        [ATTNSTUDY, *argv_of(case, clean)], capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - start < 30  # no minutes of HTTP retries
    assert done.stdout == ""
    check_one_line_and_nothing_written(done.returncode, done.stderr, expected, clean)
