"""constraints.txt pins what the last recorded study ran with, and a run can tell whether it
runs with those versions."""

from attnstudy.environment import (
    CONSTRAINTS,
    constraints_text,
    differences,
    environment_summary,
    installed_versions,
    python_version,
    read_pins,
)


def test_constraints_pin_this_python_and_skip_others():
    text = constraints_text({"numpy": "2.4.6", "torch": "2.13.0"}, "3.11")
    assert read_pins(text, "3.11") == {"numpy": "2.4.6", "torch": "2.13.0"}
    assert read_pins(text, "3.10") == {}


def test_differences_name_each_package_at_another_version_or_missing():
    pins = {"numpy": "2.4.6", "torch": "2.13.0", "scipy": "1.17.1"}
    found = differences(pins, {"numpy": "2.4.6", "torch": "2.12.0"})
    assert found == ["torch: 2.13.0 → 2.12.0", "scipy: 1.17.1 → missing"]


def test_summary_says_whether_the_environment_matches(tmp_path):
    versions = installed_versions()
    pinned = tmp_path / "constraints.txt"
    pinned.write_text(constraints_text(versions, python_version()))
    assert environment_summary(versions, pinned).startswith("matches constraints.txt")
    moved = versions | {"numpy": "0.0.1"}
    assert environment_summary(moved, pinned).startswith("1 of ")
    assert "numpy: " in environment_summary(moved, pinned)
    assert environment_summary(versions, tmp_path / "absent.txt").startswith("no constraints")


def test_the_project_pins_the_packages_it_imports():
    pins = read_pins(CONSTRAINTS.read_text(encoding="utf-8"), "3.11")
    assert {"torch", "mlflow", "optuna", "numpy", "scipy", "pandas"} <= set(pins)
    assert pins["torch"] == "2.13.0"
    assert "attnstudy" not in pins
