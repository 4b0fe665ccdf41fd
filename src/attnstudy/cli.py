"""The `attnstudy` command line. Bad input → one clear line on stderr, exit 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import fields

from attnstudy.config import Config, ConfigError, make_config

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"attnstudy: error: {message}\n")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One `--field` option per Config field; values are validated by make_config."""
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
            parser.add_argument(flag, dest=f.name, default=None, help=f"(default {f.default})")


def config_from_args(args: argparse.Namespace) -> Config:
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
    from tqdm import tqdm

    from attnstudy.train import Diverged, run

    cfg = config_from_args(args)
    bar = tqdm(total=cfg.steps, desc="train", file=sys.stderr, leave=False, disable=args.quiet)

    def progress(step, record):
        bar.update(1)
        if "val_seq_acc" in record:
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record['val_seq_acc']:.2f}")

    try:
        result = run(cfg, progress)
    except Diverged as err:
        bar.close()
        print(f"attnstudy: {err}", file=sys.stderr)
        return EXIT_DIVERGED
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


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="attnstudy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    train = sub.add_parser("train", help="train and evaluate one variant")
    add_config_options(train)
    train.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"attnstudy: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
