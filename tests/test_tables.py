"""The report's per-axis tables read what a variant is from its class, never from a list
of names, and keep a variant no registry knows (ordered last)."""

import pandas as pd
import pytest
from frames import BASE_RUN

from analysis.tables import axis_table
from attnstudy.archs import ARCHS


def runs(**variants) -> pd.DataFrame:
    """One run per (run id → settings) over BASE_RUN."""
    return pd.DataFrame([BASE_RUN | {"run_id": k} | v for k, v in variants.items()])


@pytest.mark.parametrize("arch", list(ARCHS))
def test_an_axis_table_keeps_an_architecture_only_where_the_axis_changes_it(arch):
    cls = ARCHS[arch]
    table = runs(a=dict(arch=arch, score="dot", heads=2, position="none"))
    shown = {
        axis: bool(axis_table(table, axis).rows) for axis in ("position", "score", "heads", "arch")
    }
    assert shown == {
        "position": cls.uses_positions,
        "score": cls.uses_attention,
        "heads": cls.uses_attention,
        "arch": True,
    }


@pytest.mark.parametrize("axis, unknown", [("position", "fancy"), ("score", "aaa"), ("arch", "a")])
def test_an_unknown_variant_is_kept_and_ordered_last(axis, unknown):
    table = runs(a={axis: unknown}, b={}, c={axis: BASE_RUN[axis]})
    levels = [row[next(iter(row))] for row in axis_table(table, axis).rows]
    assert levels == [BASE_RUN[axis], unknown]
