"""The code's shape, as the developers' guide asks it (issue 13): no import circles, a
config that imports no model code, short functions and small modules."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attnstudy import schema

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"attnstudy": ROOT / "src" / "attnstudy", "attnstudy.analysis": ROOT / "analysis"}
LONGEST_FUNCTION = 50  # lines, decorators excluded
LARGEST_MODULE = 400  # lines, for the modules issue 13 names and those split for it
CAPPED_MODULES = (
    "src/attnstudy/study.py",
    "src/attnstudy/tracking.py",
    "analysis/claims.py",
    "analysis/plots.py",
)


def modules() -> dict[str, Path]:
    """Every module of the two packages by dotted name."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join((package, *parts))] = path
    return found


def imported(tree: ast.Module, known: set[str]) -> set[str]:
    """The modules of `known` that a module imports anywhere (at module level or inside a
    function): `from a.b import c` is a.b.c if that is a module, else a.b. (The packages
    use absolute imports only.)"""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= {name if name in known else node.module for name in names}
    return found & known


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(ast.parse(path.read_text()), set(found)) for name, path in found.items()}


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of the graph, or [] if it has none (depth-first search)."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = "done"
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return []


def test_the_cycle_finder_finds_a_circle_and_accepts_a_tree():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_imports_inside_functions():
    tree = ast.parse("def f():\n    from attnstudy.archs import ARCHS\n")
    assert imported(tree, set(modules())) == {"attnstudy.archs"}


def test_no_module_imports_itself_through_others():
    assert cycle(import_graph()) == []


def test_config_imports_no_torch_and_no_model_code():
    code = (
        "import sys, attnstudy.config\n"
        "print(*(m for m in sys.modules if m.split('.')[0] == 'torch' or '.' in m and "
        "m.startswith('attnstudy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["attnstudy.config"]
    assert import_graph()["attnstudy.config"] == set()  # not even inside a function


def imports_of_tests(tree: ast.Module) -> set[str]:
    """The `test_*` modules a test module imports (the tests folder is on sys.path, so a
    test module could import another by its bare name)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= {f"{node.module or ''}.{alias.name}" for alias in node.names}
            found.add(node.module or "")
    return {name for name in found if name.split(".")[-1].startswith("test_")}


def test_the_test_import_finder_sees_every_form():
    tree = ast.parse(
        "import test_a\nfrom test_b import X\ndef f():\n    from tests.test_c import Y\n"
        "from tests import test_d\n"
    )
    assert imports_of_tests(tree) == {"test_a", "test_b", "tests.test_c", "tests.test_d"}
    assert imports_of_tests(ast.parse("from builders import TINY\nimport testing")) == set()


def test_no_test_module_imports_another():
    """Shared fixtures and helpers live in conftest.py and the helper modules (builders.py,
    commands.py, study_checks.py, ...), not in a test module another one imports (issue 31)."""
    found = {
        path.name: sorted(imports_of_tests(ast.parse(path.read_text())))
        for path in sorted((ROOT / "tests").glob("test_*.py"))
    }
    assert {name: names for name, names in found.items() if names} == {}


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_function_is_at_most_50_lines(name):
    path = modules()[name]
    long = [
        f"{f.name} ({f.end_lineno - f.lineno + 1} lines, line {f.lineno})"
        for f in functions(path)
        if f.end_lineno - f.lineno + 1 > LONGEST_FUNCTION
    ]
    assert long == []


@pytest.mark.parametrize("path", CAPPED_MODULES)
def test_the_modules_issue_13_names_stay_under_400_lines(path):
    lines = len((ROOT / path).read_text().splitlines())
    assert lines < LARGEST_MODULE, f"{path}: {lines} lines"


def test_the_queue_imports_no_model_code():
    """The work queue (Optuna) reads grid points and never builds a model: importing it loads
    neither torch nor a model module (issue 31)."""
    code = (
        "import sys, attnstudy.work_queue; "
        "print(sorted(m for m in sys.modules if m.startswith(('attnstudy', 'torch'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == str(
        ["attnstudy", "attnstudy.config", "attnstudy.redact", "attnstudy.schema"]
        + ["attnstudy.stores", "attnstudy.tracking_check", "attnstudy.work_queue"]
    ), loaded.stderr


TAG_LITERAL = re.compile(r"(?:tags\.`?)?attnstudy\.(\w+)")  # a tag name, or a module path


def tag_literals(tree: ast.Module) -> set[str]:
    """The string literals (f-string parts included) of a module that begin with an MLflow
    tag name of the project: `attnstudy.` then a name that is no module of the package, or
    the first name of one of schema.py's tags (`attnstudy.environment`, `attnstudy.model.`
    are both). `python -m attnstudy.cli` and the like do not begin with one."""
    modules_ = {name.split(".")[1] for name in modules() if name.count(".") >= 1}
    tags = {value.split(".")[1] for value in schema_tags()}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = TAG_LITERAL.match(node.value)
            if match and (match[1] not in modules_ or match[1] in tags):
                found.add(node.value)
    return found


def schema_tags() -> set[str]:
    """Every tag name schema.py defines, and the start of each tag its functions build."""
    names = {v for v in vars(schema).values() if isinstance(v, str) and v.startswith("attnstudy.")}
    return names | {schema.version_tag(""), schema.model_source("")}


def test_the_tag_finder_tells_tags_from_module_paths():
    code = (
        'tags = {"attnstudy.block": b, f"attnstudy.model.{e}": r, "attnstudy.new_tag": 1}\n'
        'where = "tags.`attnstudy.role` = 1"; env = "attnstudy.environment"\n'
        'argv = ["-m", "attnstudy.analysis.calibration", "python -m attnstudy.cli"]\n'
        'patch = "attnstudy.config.available_devices"\n'
    )
    assert tag_literals(ast.parse(code)) == {
        "attnstudy.block",
        "attnstudy.model.",
        "attnstudy.new_tag",
        "tags.`attnstudy.role` = 1",
        "attnstudy.environment",
    }


def test_every_tag_name_is_written_in_schema_py_only():
    """The MLflow tags are named once, in schema.py; every other module uses its constants
    (issue 31)."""
    found = {
        (str(path.relative_to(ROOT)), literal)
        for path in modules().values()
        if path.name != "schema.py"
        for literal in tag_literals(ast.parse(path.read_text()))
    }
    assert found == set()


def test_importing_the_analysis_loads_no_torch():
    """Every module of the analysis imports without torch: the variant facts come from the
    runs, and the registries are read only when a function needs one a run did not log, or
    the order of names (analysis.variants.registry; issue 31)."""
    analysis = sorted(name for name in modules() if name.startswith("attnstudy.analysis"))
    code = (
        f"import importlib, sys\nfor name in {analysis!r}:\n    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


# The modules whose tests are not in a tests/test_<module>.py of their own: each is tested
# through the behaviour-named files given (a property over every variant, a command, a
# pipeline), which test no single module (issue 31). A module that gets a test file of its
# name leaves this list; a new module gets a test file of its name or an entry here.
TESTED_BY_BEHAVIOUR = {
    # what every architecture sees and predicts, over every score and encoding
    "attnstudy.archs": ("test_attention.py", "test_rnn.py"),
    # the per-length CSV, the figure and the attention maps each trial logs
    "attnstudy.artifacts": ("test_study.py",),
    # every command, through bad input and through the pipelines
    "attnstudy.cli": ("test_bad_input.py", "test_study.py", "test_train.py"),
    # the attention statistics train --json reports (C3, C5)
    "attnstudy.measure": ("test_train.py", "test_attention.py"),
    # the attention maths: masking, causality, fused == explicit, the decoding cache
    "attnstudy.model": ("test_attention.py", "test_masking.py", "test_decoding_cache.py"),
    # what an attention call receives from its encoding: RoPE's rotation, the decoding buffer
    "attnstudy.position_context": ("test_positions.py", "test_decoding_cache.py"),
    # the code and machine tags of the runs the UI shows
    "attnstudy.provenance": ("test_ui.py", "test_packaging.py"),
    # make_config's defaults and a variant registered at run time
    "attnstudy.registries": ("test_config.py", "test_registration.py"),
    # the one module of MLflow names: no tag literal outside it
    "attnstudy.schema": ("test_structure.py",),
    # each score function against the maths and its paper
    "attnstudy.scores": ("test_attention.py", "test_length_aware.py"),
    # a store refused before anything is written
    "attnstudy.tracking_check": ("test_bad_input.py", "test_scaleout.py"),
    # stores refused before anything is written; SQLite folders made on demand
    "attnstudy.stores": ("test_bad_input.py", "test_study.py", "test_scaleout.py"),
    # the queue of grid points, on real stores and real processes
    "attnstudy.work_queue": ("test_study.py", "test_reliability.py", "test_trial_value.py"),
    # each claim's four verdicts over its registry entry (C1-C12) and each claim group's rules
    "attnstudy.analysis.claims": ("test_claims_registry.py",),
    "attnstudy.analysis.rules": ("test_claims_rnn.py", "test_claims_positions.py"),
    "attnstudy.analysis.verdicts": ("test_claims_registry.py",),
    # what the report's figures show a reader
    "attnstudy.analysis.figures_attention": ("test_plots.py",),
    "attnstudy.analysis.figures_catalog": ("test_plots.py", "test_report.py"),
    "attnstudy.analysis.figures_layout": ("test_plots.py",),
    "attnstudy.analysis.figures_style": ("test_plots.py",),
    # what the analysis knows of a variant (tests/test_length_aware.py tests the variants)
    "attnstudy.analysis.variants": ("test_analysis_variants.py",),
}


def mirrored() -> dict[str, str]:
    """Every module of the two packages (a subpackage, such as attnstudy.bench, counts as
    one) by the name of the test file that mirrors it: test_<module>.py."""
    found: dict[str, str] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            first = path.relative_to(folder).with_suffix("").parts[0]
            if first != "__init__":
                found[f"{package}.{first}"] = f"test_{first}.py"
    return found


def test_every_module_has_its_test_file_or_the_files_that_test_it():
    """A reader finds a module's tests at tests/test_<module>.py, or in the files
    TESTED_BY_BEHAVIOUR names for it (issue 31)."""
    tests = ROOT / "tests"
    names = mirrored()
    assert len(set(names.values())) == len(names), "two modules share a test file's name"
    missing = {
        module: name
        for module, name in names.items()
        if not (tests / name).exists() and module not in TESTED_BY_BEHAVIOUR
    }
    assert missing == {}


def test_the_modules_tested_by_behaviour_have_no_test_file_of_their_own():
    """TESTED_BY_BEHAVIOUR cannot rot: each entry is a module without its own test file, and
    each file it names exists."""
    tests = ROOT / "tests"
    names = mirrored()
    assert set(TESTED_BY_BEHAVIOUR) <= set(names)
    assert [m for m in TESTED_BY_BEHAVIOUR if (tests / names[m]).exists()] == []
    named = {name for files in TESTED_BY_BEHAVIOUR.values() for name in files}
    assert sorted(name for name in named if not (tests / name).exists()) == []
