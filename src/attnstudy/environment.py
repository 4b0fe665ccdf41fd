"""The package versions a study runs with, beside the pins of constraints.txt.

`make setup` installs with the pins of constraints.txt (the versions the last recorded study
ran with); `make constraints` rewrites it from the running environment
(`python -m attnstudy.environment`). Each study's parent run logs what it ran with, so a
result can be traced to its versions even where they differ from the pins.
"""

from __future__ import annotations

import platform
import re
import sys
from datetime import datetime, timezone
from importlib.metadata import distributions
from pathlib import Path

from attnstudy.schema import ENVIRONMENT, ENVIRONMENT_ARTIFACT

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"  # in a checkout only
INSTALLERS = ("attnstudy", "pip", "setuptools", "wheel")  # left out, as `pip freeze` does
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)\s*(?:;\s*python_version\s*==\s*\"([\d.]+)\")?")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_version() -> str:
    return ".".join(platform.python_version_tuple()[:2])


def installed_versions() -> dict[str, str]:
    """Every installed distribution but this project and the installers, by canonical name,
    local version labels (torch's +cpu) dropped, as a pin compares them."""
    found = {_canonical(d.metadata["Name"]): d.version.split("+")[0] for d in distributions()}
    return {name: found[name] for name in sorted(found) if name not in INSTALLERS}


def constraints_text(versions: dict[str, str], python: str) -> str:
    """constraints.txt pinning `versions` for this Python only: on another one the pins do
    not apply and pip resolves afresh (numpy 2.4, for one, needs Python 3.11)."""
    today = datetime.now(timezone.utc).date()
    header = (
        f"# The exact versions of every package the last recorded study ran with ({today},\n"
        f"# Python {python}). `make setup` installs with them; on another Python the pins do\n"
        "# not apply and pip resolves afresh. `make constraints` rewrites this file from .venv.\n"
        "# Each study's parent run logs the versions it ran with (environment.txt) and whether\n"
        f"# they match these (tag {ENVIRONMENT}).\n"
    )
    pins = [f'{name}=={v} ; python_version == "{python}"' for name, v in versions.items()]
    return header + "\n".join(pins) + "\n"


def read_pins(text: str, python: str) -> dict[str, str]:
    """The pins of a constraints file that apply on `python`."""
    pins = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match and match[3] in (None, python):
            pins[_canonical(match[1])] = match[2]
    return pins


def differences(pins: dict[str, str], versions: dict[str, str]) -> list[str]:
    """'name: pinned → installed' for every pinned package installed at another version
    (or missing)."""
    return [
        f"{name}: {want} → {versions.get(name, 'missing')}"
        for name, want in pins.items()
        if versions.get(name) != want
    ]


def environment_summary(versions: dict[str, str], constraints: Path = CONSTRAINTS) -> str:
    """The tag's value: whether the running versions are those constraints.txt pins."""
    if not constraints.exists():
        return "no constraints.txt (installed from a package)"
    pins = read_pins(constraints.read_text(encoding="utf-8"), python_version())
    if not pins:
        return f"constraints.txt pins nothing for Python {python_version()}"
    differ = differences(pins, versions)
    if not differ:
        return f"matches constraints.txt ({len(pins)} packages)"
    shown = "; ".join(differ[:5]) + ("; …" if len(differ) > 5 else "")
    return f"{len(differ)} of {len(pins)} packages differ from constraints.txt: {shown}"


def environment_text(versions: dict[str, str]) -> str:
    """environment.txt: the Python and every package version a study ran with."""
    lines = [f"python=={platform.python_version()}  # {sys.platform}"]
    return "\n".join(lines + [f"{name}=={v}" for name, v in versions.items()]) + "\n"


def log_environment(client, run_id: str) -> None:
    """On a study's parent run (an MlflowClient's): the versions this launch runs with
    (environment.txt, the latest launch's) and whether they are those constraints.txt pins."""
    versions = installed_versions()
    client.set_tag(run_id, ENVIRONMENT, environment_summary(versions))
    client.log_text(run_id, environment_text(versions), ENVIRONMENT_ARTIFACT)


if __name__ == "__main__":
    sys.stdout.write(constraints_text(installed_versions(), python_version()))
