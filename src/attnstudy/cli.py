"""The `attnstudy` command line. Bad input → one clear line on stderr, exit 2."""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
from dataclasses import fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from attnstudy.config import ZERO_MEANS, Config, ConfigError
from attnstudy.schema import TRAIN_LOSS, VAL_SEQ_ACC

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
MOST_PROCESSES = 256  # --workers and --threads: beyond it a typo, not a plan
VERSIONS = ("attnstudy", "torch", "optuna", "mlflow")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"attnstudy: error: {message}\n")


def versions() -> str:
    """One line per package that decides results, and Python's, as pasted in bug reports."""

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    lines = [f"{package} {installed(package)}" for package in VERSIONS]
    return "\n".join([*lines, f"python {platform.python_version()} ({platform.platform()})"])


class VersionAction(argparse.Action):
    """--version, read from the installed packages' metadata only when asked."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print versions and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(versions())
        parser.exit()


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One `--field` option per Config field; values are validated by registries.make_config."""
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"(default {f.default})",
            )
        else:
            meaning = ZERO_MEANS.get(f.name)
            default = f"{f.default}: {meaning}" if meaning and f.default == 0 else f.default
            parser.add_argument(flag, dest=f.name, default=None, help=f"(default {default})")


def config_from_args(args: argparse.Namespace) -> Config:
    from attnstudy.registries import make_config

    values = {f.name: getattr(args, f.name) for f in fields(Config)}
    return make_config(**{k: v for k, v in values.items() if v is not None})


def _jsonable(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _print_table(result) -> None:
    print(f"{'length':>6} {'n':>5} {'token_acc':>9} {'seq_acc':>8}")
    for r in result.per_length:
        mark = "" if r.length <= result.config.train_max_len else "  (beyond training)"
        print(f"{r.length:>6} {r.n:>5} {r.token_acc:>9.3f} {r.seq_acc:>8.3f}{mark}")
    print()
    for key, value in result.summary.items():
        print(f"{key:>18}: {value:.4g}" if isinstance(value, float) else f"{key:>18}: {value}")


def cmd_train(args: argparse.Namespace) -> int:
    from attnstudy.progress import progress_bar
    from attnstudy.train import Diverged, run

    cfg = config_from_args(args)
    bar = progress_bar(cfg.steps, "train", sys.stderr, "step", leave=False, disable=args.quiet)

    def progress(step, record):
        bar.update(1)
        if VAL_SEQ_ACC in record:
            bar.set_postfix(loss=f"{record[TRAIN_LOSS]:.3f}", val=f"{record[VAL_SEQ_ACC]:.2f}")

    try:
        result = run(cfg, progress)
    except Diverged as err:
        bar.close()
        print(f"attnstudy: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except (RuntimeError, MemoryError) as err:
        bar.close()
        if not out_of_memory(err):
            raise
        raise too_big(err, cfg) from None
    bar.close()
    if args.json:
        out = {
            "config": cfg.to_dict(),
            "summary": {k: _jsonable(v) for k, v in result.summary.items()},
            "per_length": [
                {"length": r.length, "n": r.n, "token_acc": r.token_acc, "seq_acc": r.seq_acc}
                for r in result.per_length
            ],
        }
        print(json.dumps(out))
    else:
        _print_table(result)
    return 0


def out_of_memory(err: BaseException) -> bool:
    """Whether `err` is a failed allocation (torch says so in its message on CPU)."""
    import torch

    failed = isinstance(err, (MemoryError, torch.OutOfMemoryError))
    return failed or "can't allocate memory" in str(err)


def too_big(err: BaseException, cfg: Config) -> ConfigError:
    """A run that does not fit this machine's memory, as bad input."""
    size = re.search(r"allocate ([0-9.]+ ?[A-Za-z]+)", str(err))
    return ConfigError(
        f"out of memory on device {cfg.device}"
        + (f" (allocating {size.group(1)})" if size else "")
        + "; allowed: a smaller d_model, n_layers, ff_mult, batch_size, val_samples, "
        "eval_samples or eval_max_len"
    )


def check_positive(args: argparse.Namespace, *options: str, most: int | None = None) -> None:
    for option in options:
        value = getattr(args, option)
        if value is not None and value < 1:
            raise ConfigError(f"--{option}: must be >= 1, got {value}")
        if value is not None and most is not None and value > most:
            raise ConfigError(f"--{option}: must be <= {most}, got {value}")


def cmd_study(args: argparse.Namespace) -> int:
    from attnstudy.progress import study_status
    from attnstudy.stores import make_stores
    from attnstudy.study import run_study
    from attnstudy.study_config import load_study

    spec = load_study(args.file)
    beat = {"heartbeat_s": args.heartbeat, "grace_s": args.grace} if args.action == "run" else {}
    stores = make_stores(args.runs_dir, args.storage, args.tracking_uri, **beat)
    if args.action == "status":
        return study_status(spec, stores)
    check_positive(args, "workers", "threads", most=MOST_PROCESSES)
    return run_study(spec, stores, args.workers, args.allow_grid_change, args.threads)


def add_study_parser(sub) -> None:
    study = sub.add_parser("study", help="run a study/*.yaml grid, show its state, time it")
    actions = study.add_subparsers(dest="action", required=True, parser_class=ArgumentParser)
    for action, text in (("run", "run (or resume) every grid point"), ("status", "per point")):
        p = actions.add_parser(action, help=text)
        p.add_argument("file", help="study definition, e.g. study/quick.yaml")
        p.add_argument("--runs-dir", default="runs", help="local stores (default runs/)")
        p.add_argument("--storage", help="Optuna storage URL (default sqlite in runs dir)")
        p.add_argument("--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI/sqlite)")
        p.set_defaults(func=cmd_study)
        if action == "run":
            p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
            p.add_argument(
                "--threads", type=int, help="torch threads per worker (default: cores/workers)"
            )
            p.add_argument(
                "--heartbeat", type=int, default=5, help="seconds between beats (default 5)"
            )
            p.add_argument(
                "--grace",
                type=int,
                default=20,
                help="seconds without a beat: worker dead (default 20)",
            )
            p.add_argument(
                "--allow-grid-change",
                action="store_true",
                help="continue a study whose grid changed (results of unchanged points kept)",
            )
    importance = actions.add_parser("importance", help="which axis matters: Optuna importances")
    importance.add_argument("file", help="study definition, e.g. study/quick.yaml")
    importance.add_argument("--runs-dir", default="runs", help="local stores (default runs/)")
    importance.add_argument("--storage", help="Optuna storage URL (default sqlite in runs dir)")
    importance.set_defaults(func=cmd_importance)
    estimate = actions.add_parser("estimate", help="time a sample of points, project the grid")
    estimate.add_argument("file", help="study definition, e.g. study/full.yaml")
    estimate.add_argument("--sample", type=int, default=20, help="points to time (default 20)")
    estimate.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    estimate.add_argument(
        "--workers", type=int, default=1, help="trials at once, as the study's workers (default 1)"
    )
    estimate.add_argument(
        "--csv",
        type=Path,
        default=None,
        help="also write the sample, a row per trial, for "
        "`python -m attnstudy.analysis.calibration NAME@CSV`",
    )
    estimate.set_defaults(func=cmd_estimate)


def cmd_importance(args: argparse.Namespace) -> int:
    """Each varying axis's Optuna importance for the primary metrics, over the finished
    trials of the study file's grid."""
    from attnstudy.analysis.importance import as_text, axis_columns, importance_table, study_frame
    from attnstudy.analysis.load import StudyError
    from attnstudy.redact import redact
    from attnstudy.stores import make_stores
    from attnstudy.study_config import load_study

    spec = load_study(args.file)
    try:
        frame = study_frame(spec, make_stores(args.runs_dir, args.storage))
        print(as_text(importance_table(frame, axis_columns(frame))))
    except StudyError as err:
        print(f"attnstudy: error: {redact(str(err))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from attnstudy.estimate import estimate_study
    from attnstudy.study_config import load_study

    spec = load_study(args.file)
    check_positive(args, "sample", "workers")
    if args.csv is not None and not args.csv.parent.is_dir():
        raise ConfigError(f"--csv: no directory {args.csv.parent} to write {args.csv.name} in")
    estimate_study(spec, args.sample, args.seed, args.workers, sys.stdout, csv_path=args.csv)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from attnstudy.analysis.load import StudyError
    from attnstudy.analysis.report import build_report
    from attnstudy.redact import redact
    from attnstudy.tracking_check import check_tracking_uri, default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    check_tracking_uri(uri, args.study)  # the report is attached to the study's parent run
    try:
        html, pdf = build_report(args.study, args.out, uri)
    except StudyError as err:
        print(f"attnstudy: error: {redact(str(err))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print("\n".join(str(path) for path in (html, pdf) if path))
    return 0


def add_report_parser(sub) -> None:
    report = sub.add_parser("report", help="HTML and PDF report of a study's MLflow runs")
    report.add_argument("--study", required=True, help="study name (its MLflow experiment)")
    report.add_argument("--out", help="output directory (default reports/<study>)")
    report.add_argument("--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI/sqlite)")
    report.set_defaults(func=cmd_report)


def cmd_ui(args: argparse.Namespace) -> int:
    """Print the study's runs page, then serve the MLflow UI over a local store (a tracking
    server already serves its own UI)."""
    import os
    from pathlib import Path

    from attnstudy.redact import redact
    from attnstudy.tracking import runs_page, silence
    from attnstudy.tracking_check import check_tracking_uri, default_tracking_uri

    silence()
    uri = args.tracking_uri or default_tracking_uri(Path(args.runs_dir))
    check_tracking_uri(uri, args.study)  # the page tags the study's experiment
    remote = uri.startswith(("http://", "https://"))
    server = uri.rstrip("/") if remote else f"http://127.0.0.1:{args.port}"
    page = runs_page(uri, args.study, server)
    print(f"MLflow UI over {redact(uri)}, study {args.study}:\n  {redact(page)}")
    if remote:
        return 0
    sys.stdout.flush()
    argv = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--workers", "1"]
    argv += ["--host", "127.0.0.1", "--port", str(args.port)]
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner
    os.execve(sys.executable, argv, env)


def add_ui_parser(sub) -> None:
    ui = sub.add_parser("ui", help="the MLflow UI, opened on a study's runs")
    ui.add_argument("--study", default="quick", help="study name (default quick)")
    ui.add_argument("--runs-dir", default="runs", help="local stores (default runs/)")
    ui.add_argument("--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI/sqlite)")
    ui.add_argument("--port", type=int, default=5000, help="UI port on 127.0.0.1 (default 5000)")
    ui.set_defaults(func=cmd_ui)


def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from attnstudy.bench import run_bench
    from attnstudy.bench.report import default_uri, log_to_mlflow, markdown, write_files

    check_positive(args, "threads", most=MOST_PROCESSES)
    rows, meta = run_bench(args.quick, args.threads)
    files = write_files(rows, meta, Path(args.out))
    log_to_mlflow(args.tracking_uri or default_uri(), rows, meta, files)
    print(markdown(rows, meta))
    print("\n".join(map(str, files)), file=sys.stderr)
    return 0


def add_bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="speed and memory against reference implementations")
    bench.add_argument("--quick", action="store_true", help="tiny shapes: a smoke run")
    bench.add_argument("--out", default="reports/bench", help="directory of bench.json/.md")
    bench.add_argument("--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI/sqlite)")
    bench.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    bench.set_defaults(func=cmd_bench)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="attnstudy", description=__doc__)
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    train = sub.add_parser("train", help="train and evaluate one variant")
    add_config_options(train)
    train.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)
    add_study_parser(sub)
    add_report_parser(sub)
    add_bench_parser(sub)
    add_ui_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (its line printed)
        return done.code
    try:
        return args.func(args)
    except ConfigError as err:
        from attnstudy.redact import redact

        print(f"attnstudy: error: {redact(str(err))}", file=sys.stderr)  # whatever it quotes
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
