"""The documents in docs/ agree with the code they describe."""

import re
from pathlib import Path

from attnstudy.analysis import anchors
from attnstudy.analysis.claims import CLAIMS
from attnstudy.analysis.docs import CLAIMS_DOC, claims_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_claims_doc_is_what_the_registry_writes():
    assert CLAIMS_DOC.read_text(encoding="utf-8") == claims_markdown(), "run `make docs`"


def test_claims_doc_states_every_claim_with_its_rule():
    text = CLAIMS_DOC.read_text(encoding="utf-8")
    assert re.findall(r"^## (C\d+)$", text, re.M) == list(CLAIMS)


def published_numbers() -> list[float]:
    tables = [*anchors.KAZEMNEJAD_OOD.values(), anchors.KAZEMNEJAD_MRR, anchors.LUONG_BLEU]
    return [v for table in tables for v in table.values()] + [anchors.RUOSS_GAIN * 100]


def test_every_published_number_the_report_uses_is_in_the_anchors_doc():
    text = (DOCS / "anchors.md").read_text(encoding="utf-8")
    for value in published_numbers():
        shown = f"{value:.3f}".lstrip("0") if value < 1 else f"{value:.1f}"
        assert shown in text, f"{shown} (analysis/anchors.py) is not in docs/anchors.md"
