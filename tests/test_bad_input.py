"""Bad input to `attnstudy train` and `attnstudy study run`: one line on stderr naming what is
wrong and what is allowed, exit 2, and nothing written to either store."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import fields

import pytest
import yaml
from builders import TINY_STUDY
from commands import ATTNSTUDY

from attnstudy.cli import main
from attnstudy.config import RANGES, Config, available_devices

FIXED = TINY_STUDY["fixed"]
ABSENT = [d for d in ("cuda", "mps") if d not in available_devices()]  # on this machine


def train(*args: str):
    return ("train", None, args)


def study(change: dict | str, *args: str):
    """`study run` of TINY_STUDY with `change` (a dict merged over it, or the raw file text)."""
    return ("study", change, args)


def blocks(**named: dict) -> str:
    """The text of a study file of TINY_STUDY's settings with these blocks (in this order)."""
    blocks = {name: {"tasks": ["copy"], "axes": {}} | block for name, block in named.items()}
    return yaml.safe_dump({"name": "tiny", "fixed": FIXED, "blocks": blocks}, sort_keys=False)


def command(*args: str):
    """`attnstudy` with these arguments exactly."""
    return ("command", None, args)


def absent_device(device: str) -> str:
    available = ", ".join(available_devices())
    return f"device: {device!r} is not available on this machine; available: {available}"


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
    **{f"{device} absent": (train("--device", device), absent_device(device)) for device in ABSENT},
    "heads not dividing d_model, with rope": (
        train("--heads", "3", "--d-model", "64", "--position", "rope"),
        "heads: must divide d_model=64; allowed: 1, 2, 4, 8, 16, 32, 64; got 3",
    ),
    "no heads, with rope": (train("--heads", "0", "--position", "rope"), "heads: must be >= 1"),
    "negative odd d_model, with sinusoidal": (
        train("--d-model", "-3", "--position", "sinusoidal"),
        "d_model: must be >= 1, got -3",
    ),
    "huge d_model": (train("--d-model", str(10**9)), "d_model: must be <= 16384, got 1000000000"),
    "huge layers": (train("--n-layers", str(10**9)), "n_layers: must be <= 1024, got 1000000000"),
    "huge batch": (train("--batch-size", str(10**9)), "batch_size: must be <= 65536, got 1000"),
    "huge evaluation length": (train("--eval-max-len", str(10**9)), "eval_max_len: must be <="),
    "huge validation sample": (train("--val-samples", str(10**9)), "val_samples: must be <="),
    "steps beyond 64 bits": (train("--steps", str(10**30)), "steps: must be <= 1099511627776"),
    "seed beyond 64 bits": (train("--seed", str(10**30)), "seed: must be <= 9223372036854775807"),
    "negative ff_mult": (train("--ff-mult", "-1"), "ff_mult: must be >= 1, got -1"),
    "negative weight decay": (train("--weight-decay", "-1"), "weight_decay: must be >= 0 and fi"),
    "no gradient clipping norm": (train("--grad-clip", "0"), "grad_clip: must be positive (inf:"),
    "learning rate nan": (train("--lr", "nan"), "lr: must be a number, got nan"),
    "learning rate inf": (train("--lr", "inf"), "lr: must be positive and finite, got inf"),
    "too few T5 buckets for an encoder": (
        train("--arch", "encoder", "--position", "t5", "--t5-buckets", "2"),
        "t5_buckets: must be >= 4, got 2",
    ),
    "T5 max distance within the exact buckets": (
        train("--position", "t5", "--t5-max-distance", "16"),
        "t5_max_distance: must be > t5_buckets/2 = 16 (shorter distances get exact buckets)",
    ),
    "random positions fewer than a sequence": (
        train("--position", "rope", "--randomized", "--max-random-position", "5"),
        "max_random_position: must be 0 (= 4 x the longest sequence) or >= the longest seq",
    ),
    "randomized without position ids, encoder": (
        train("--arch", "encoder", "--randomized"),
        "randomized: needs a position encoding that takes position indices (",
    ),
    "empty task": (train("--task", ""), "task: unknown value ''; allowed: copy,"),
    "empty steps": (train("--steps", ""), "steps: expected int, got ''"),
    "no command": (command(), "the following arguments are required: command"),
    "threads not a number": (study({}, "--threads", "x"), "argument --threads: invalid int value"),
    "huge workers": (study({}, "--workers", str(10**9)), "--workers: must be <= 256, got 10000"),
    "huge threads": (study({}, "--threads", "100000"), "--threads: must be <= 256, got 100000"),
    "huge grace": (
        study({}, "--heartbeat", "1", "--grace", str(10**30)),
        "need 1 <= heartbeat < grace <= 86400 (seconds), got 1 and 1000000000000000000000000",
    ),
    **{
        f"{device} absent in a study file": (
            study({"fixed": FIXED | {"device": device}}),
            "fixed." + absent_device(device),
        )
        for device in ABSENT
    },
    "empty exclusion rule": (study({"exclude": [{}]}), "exclude: the exclusions remove all"),
    "sampler seed beyond 32 bits": (
        study({"sampler_seed": 2**32}),
        "sampler_seed: expected an integer in [0, 2**32), got 4294967296",
    ),
    "huge value in a study file": (
        study({"fixed": FIXED | {"d_model": 10**9}}),
        "fixed.d_model: must be <= 16384, got 1000000000 (grid point",
    ),
    "empty axis": (study({"axes": {"heads": []}}), "axes.heads: expected a non-empty list of v"),
    "empty name": (study({"name": ""}), "name: expected letters, digits, '_', '.' or '-', got ''"),
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
        "need 1 <= heartbeat < grace <= 86400 (seconds), got 5 and 5",
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
        study(yaml.safe_dump(TINY_STUDY | {"blocks": {}})),
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
    if kind == "command":
        return list(args)
    if kind == "train":
        return ["train", *args, "--quiet"]
    path = tmp_path / ("missing.yaml" if change is None else "study.yaml")
    if change is not None:
        text = change if isinstance(change, str) else yaml.safe_dump(TINY_STUDY | change)
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


@pytest.mark.parametrize("name", ["malformed YAML", "tracking server unreachable", "no command"])
def test_bad_input_from_the_shell_is_one_line_on_stderr_and_exit_2(name, clean):
    case, expected = CASES[name]
    done = subprocess.run(  # the timeout only bounds a hang (the start-up alone took 18 s,
        [ATTNSTUDY, *argv_of(case, clean)],  # load 6 on 2 cores)
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.stdout == ""
    check_one_line_and_nothing_written(done.returncode, done.stderr, expected, clean)


def test_an_unreachable_tracking_server_is_refused_in_seconds_not_minutes(clean, capsys):
    """MLflow itself retries an unreachable server for minutes; the check asks once. Timed
    in-process, so start-up on a loaded machine is not counted: 0.05 s measured at load 6."""
    case, expected = CASES["tracking server unreachable"]
    start = time.monotonic()
    code = main(argv_of(case, clean))
    assert time.monotonic() - start < 30
    check_one_line_and_nothing_written(code, capsys.readouterr().err, expected, clean)


def test_an_absent_device_is_refused_whatever_this_machine_has(monkeypatch, clean, capsys):
    monkeypatch.setattr("attnstudy.config.available_devices", lambda: ("auto", "cpu"))
    for device in ("cuda", "mps"):
        code = main(["train", "--device", device, "--quiet"])
        expected = f"device: {device!r} is not available on this machine; available: auto, cpu"
        check_one_line_and_nothing_written(code, capsys.readouterr().err, expected, clean)


def raising(error: Exception):
    def run(*args):
        raise error

    return run


def test_a_run_too_big_for_memory_is_one_line_exit_2(monkeypatch, clean, capsys):
    """torch's own message when an allocation fails on CPU (on CUDA: OutOfMemoryError)."""
    failure = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 1024000000000 bytes. Error code 12"
    )
    monkeypatch.setattr("attnstudy.train.run", raising(failure))
    code = main(["train", "--quiet"])
    expected = "out of memory on device auto (allocating 1024000000000 bytes); allowed: a small"
    check_one_line_and_nothing_written(code, capsys.readouterr().err, expected, clean)


def test_other_runtime_errors_are_not_taken_for_memory(monkeypatch):
    monkeypatch.setattr("attnstudy.train.run", raising(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train", "--quiet"])


def test_version_names_the_packages_that_decide_results(capsys):
    import mlflow
    import optuna
    import torch

    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("attnstudy ")
    assert lines[1:4] == [
        f"torch {torch.__version__}",
        f"optuna {optuna.__version__}",
        f"mlflow {mlflow.__version__}",
    ]
    assert lines[4].startswith(f"python {sys.version.split()[0]} (")


def test_every_integer_setting_has_a_range():
    """A new integer field of Config must say its range, or its extremes go unchecked."""
    ints = [f.name for f in fields(Config) if type(f.default) is int]
    assert sorted(ints) == sorted(name for name, _, _ in RANGES)


def test_help_says_what_a_zero_default_means():
    from attnstudy.cli import build_parser
    from attnstudy.config import ZERO_MEANS

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    text = " ".join(train.format_help().split())  # argparse wraps lines
    for field, meaning in ZERO_MEANS.items():
        assert f"--{field.replace('_', '-')} " in text and f"(default 0: {meaning})" in text
