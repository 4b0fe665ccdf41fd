"""The claims the study tests, written to ``docs/claims.md`` from the claim registry, so the
document cannot drift from the rules the report applies. ``make docs`` rewrites it; a test
checks that the committed file is what this module writes."""

from __future__ import annotations

import sys
from pathlib import Path

from analysis.claims import CLAIMS, DECISION_RULE

CLAIMS_DOC = Path(__file__).resolve().parent.parent / "docs" / "claims.md"
INTRO = """\
# The claims under test

A set of lecture notes on attention and positional encodings (in Chinese) makes the claims
below; the study exists to test each one with measured evidence. Each claim is paraphrased
in English, then given the rule that decides it, written down before any data is seen, and
its one primary metric. The report computes every verdict from the logged runs by these
rules; none is typed by hand. This file is generated from `analysis/claims.py`
(`make docs`); a test fails if the two differ.

## How every rule is decided

{decision}

Verdicts: **supported**, **refuted**, **mixed** (the interval allows either sign), or
**inconclusive (n = …)** (too few seeds or competent runs; the report says which runs it
needs).
"""


def claims_markdown() -> str:
    parts = [INTRO.format(decision=DECISION_RULE)]
    for claim in CLAIMS.values():
        sign = "positive" if claim.sign > 0 else "negative"
        parts.append(
            f"\n## {claim.id}\n\n**Claim.** {claim.text}\n\n**Primary metric.** "
            f"`{claim.metric}` (claimed sign of the effect: {sign}).\n\n**Rule.** {claim.rule}\n\n"
            f"**Runs it needs.** {claim.needs}\n"
        )
    return "".join(parts)


def main() -> int:
    CLAIMS_DOC.write_text(claims_markdown(), encoding="utf-8")
    print(f"wrote {CLAIMS_DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
