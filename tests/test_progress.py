"""The progress bar: tqdm's on a terminal, a line every tenth of the way to a file or a
pipe (a log read later, or a CI console)."""

from __future__ import annotations

import io

from attnstudy.cli import main
from attnstudy.progress import Milestones, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_to_a_file_writes_one_line_every_tenth_and_no_carriage_return():
    out = io.StringIO()
    bar = progress_bar(200, "train", out, "step")
    for step in range(200):
        bar.update(1)
        bar.set_postfix(loss=f"{1 / (step + 1):.3f}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 10
    assert [line.split()[1] for line in lines] == [f"{p}%" for p in range(10, 101, 10)]
    assert lines[-1].startswith("train: 100% 200/200 step") and lines[-1].endswith("loss=0.005")


def test_a_resumed_bar_counts_from_where_it_starts():
    out = io.StringIO()
    bar = Milestones(20, "study", out, "trial", initial=13)
    bar.update(0)
    bar.update(2)  # 15 of 20: the 70% line
    bar.update(5)
    assert [line.split()[1:3] for line in out.getvalue().splitlines()] == [
        ["75%", "15/20"],
        ["100%", "20/20"],
    ]


def test_a_bar_to_a_terminal_is_tqdm_and_a_disabled_bar_writes_nothing():
    from tqdm import tqdm

    assert isinstance(progress_bar(5, "x", Terminal(), leave=False), tqdm)
    out = io.StringIO()
    bar = progress_bar(5, "x", out, disable=True)
    bar.update(5)
    bar.close()
    assert out.getvalue() == ""


def test_train_to_a_pipe_prints_lines_not_a_redrawn_bar(capsys):
    args = ["train", "--d-model", "8", "--heads", "2", "--n-layers", "1", "--steps", "20"]
    args += ["--train-max-len", "3", "--val-every", "10", "--val-samples", "4"]
    assert main([*args, "--eval-samples", "2"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and len(err.splitlines()) == 10
