"""What the analysis knows of a variant (analysis.variants): the facts its classes declare,
as a trial logged them (tracking.variant_tags), else as the registered classes declare them
now."""

import pandas as pd

from attnstudy.analysis import modern, rules
from attnstudy.analysis.variants import fact, flag, transformers
from attnstudy.archs import ARCHS
from attnstudy.positions import POSITIONS
from attnstudy.registries import declared_facts, make_config
from attnstudy.schema import (
    ENCODING_FAMILY,
    LONG_RANGE,
    SCORE_MODERN,
    SHIFT_INVARIANT,
    USES_POSITIONS,
    VARIANT_FACTS,
)
from attnstudy.scores import SCORES
from attnstudy.tasks import TASKS
from attnstudy.tracking import variant_tags

VARIANTS = [  # task, arch, position, score
    ("copy", "decoder", "rope", "scaled_dot"),
    ("sorted_recall", "rnn", "none", "dot"),
    ("reverse", "encoder", "learned", "ssmax"),
]


def runs(variants=VARIANTS, **facts) -> pd.DataFrame:
    frame = pd.DataFrame(variants, columns=["task", "arch", "position", "score"])
    return frame.assign(**facts)


def test_declared_facts_are_read_from_the_classes():
    for task, arch, position, score in VARIANTS:
        facts = declared_facts(task, arch, position, score)
        assert set(facts) == set(VARIANT_FACTS)
        assert facts[ENCODING_FAMILY] == POSITIONS[position].family
        assert facts[SHIFT_INVARIANT] == POSITIONS[position].shift_invariant(SCORES[score])
        assert facts[SCORE_MODERN] == SCORES[score].modern
        assert facts[USES_POSITIONS] == ARCHS[arch].uses_positions
        assert facts[LONG_RANGE] == TASKS[task].long_range


def test_a_name_no_registry_holds_declares_nothing():
    facts = declared_facts("new_task", "new_arch", "wavelet", "new_score")
    assert facts[ENCODING_FAMILY] == "unknown"
    assert not facts[SHIFT_INVARIANT] and not facts[LONG_RANGE] and not facts[SCORE_MODERN]
    assert facts[USES_POSITIONS]  # an unknown architecture is drawn as a Transformer


def test_a_trial_is_tagged_with_every_fact_its_classes_declare():
    cfg = make_config(task="copy", arch="decoder", position="rope", score="scaled_dot")
    tags = variant_tags(cfg)
    facts = declared_facts("copy", "decoder", "rope", "scaled_dot")
    assert {name: tags[name] for name in VARIANT_FACTS} == {
        name: str(value).lower() for name, value in facts.items()
    }


def test_the_logged_facts_win_over_the_registered_classes():
    """A run is read as the code that trained it declared it, whatever the classes say now."""
    logged = runs(
        encoding_family=["absolute", "relative", "absolute"],
        uses_positions=[False, True, True],
        long_range=[True, False, False],
    )
    assert rules.family(logged).tolist() == ["absolute", "relative", "absolute"]
    assert transformers(logged)["arch"].tolist() == ["rnn", "encoder"]
    assert flag(logged, LONG_RANGE).tolist() == [True, False, False]


def test_runs_without_logged_facts_are_read_from_the_registered_classes():
    """A store written before the facts were logged, or a frame built by hand; a run that
    logged none among runs that did."""
    declared = [declared_facts(*variant) for variant in VARIANTS]
    families = [d[ENCODING_FAMILY] for d in declared]
    assert fact(runs(), ENCODING_FAMILY).tolist() == families
    partly = runs(encoding_family=[None, None, "relative"])
    assert fact(partly, ENCODING_FAMILY).tolist() == [*families[:2], "relative"]
    assert flag(runs(), USES_POSITIONS).tolist() == [d[USES_POSITIONS] for d in declared]
    assert rules.shift_invariant(runs()).tolist() == [d[SHIFT_INVARIANT] for d in declared]
    names = modern.modern_names(runs())
    assert names["normalisers"] == [s for s in ("scaled_dot", "dot", "ssmax") if SCORES[s].modern]
