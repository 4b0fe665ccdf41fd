"""The claims the study tests, written to ``docs/claims.md`` from the claim registry, so the
document cannot drift from the rules the report applies. ``make docs`` rewrites it; a test
checks that the committed file is what this module writes."""

from __future__ import annotations

import sys
from pathlib import Path

from attnstudy.analysis.claims import CLAIMS, RULE_CHANGES, RULE_VERSION
from attnstudy.analysis.power import seeds_text
from attnstudy.analysis.verdicts import DECISION_RULE

CLAIMS_DOC = Path(__file__).resolve().parent.parent / "docs" / "claims.md"
INTRO = """\
# The claims under test

A set of lecture notes on attention and positional encodings (in Chinese) makes the claims
below; the study exists to test each one with measured evidence. Each claim is paraphrased
in English, then given the rule that decides it, written down before any data is seen, and
its one primary metric. The report computes every verdict from the logged runs by these
rules; none is typed by hand. This file is generated from `analysis/claims.py`
(`make docs`); a test fails if the two differ.

Rule version {version}; each record in `results/` names the version it was decided by.

## How every rule is decided

{decision}

Verdicts: **supported**, **refuted**, **no meaningful difference** (the effect shown to lie
within ± Δ), or **inconclusive (n = …)** (neither shown with the seeds there are; the report
says about how many seeds would decide it, or which runs it needs).

## How many seeds a claim needs

{seeds}
"""


def claims_markdown() -> str:
    seeds = seeds_text(family=len(CLAIMS))
    parts = [INTRO.format(version=RULE_VERSION, decision=DECISION_RULE, seeds=seeds)]
    for claim in CLAIMS.values():
        sign = "positive" if claim.sign > 0 else "negative"
        parts.append(
            f"\n## {claim.id}\n\n**Claim.** {claim.text}\n\n**Primary metric.** "
            f"`{claim.metric}` (claimed sign of the effect: {sign}).\n\n**Rule.** {claim.rule}\n\n"
            f"**Smallest effect of interest.** Δ = {claim.smallest_effect:g}: "
            f"{claim.why_smallest}.\n\n**Runs it needs.** {claim.needs}\n"
        )
    parts.append("\n## Rule changes\n\n")
    parts += [f"- **Version {v}.** {text}\n" for v, text in RULE_CHANGES.items()]
    return "".join(parts)


def main() -> int:
    CLAIMS_DOC.write_text(claims_markdown(), encoding="utf-8")
    print(f"wrote {CLAIMS_DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
