"""The package's layout (issue 19): one subpackage per pipeline stage, imports that only point
backwards along the pipeline, no import cycles, the workflow's constants in step with adl.choices,
torch-free configuration modules, short functions and empty subpackage ``__init__`` files.

Stages, in pipeline order: data -> downsampler -> shards -> sr -> report. The ground floor (the flat
modules of adl/ and adl/nets/) serves every stage and imports none. A module may import the ground
floor and modules of its own or an earlier stage. Command-line modules are apart: a stage's ``cli``
module (adl/<stage>/cli.py) may import its own and earlier stages; adl/cli.py and adl/__main__.py,
the top, may import everything. Nothing else imports a command-line module.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from adl import choices

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "adl"

STAGES = ("data", "downsampler", "shards", "sr", "report")  # pipeline order
GROUND_PACKAGES = ("nets",)  # subpackages that belong to the ground floor
TOP_CLI = ("adl.cli", "adl.__main__")
MAX_FUNCTION_LINES = 80


# --------------------------------------------------------------------------- the package's modules


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES: dict[str, ast.Module] = {name: ast.parse(p.read_text(), str(p)) for name, p in MODULES.items()}


@dataclass(frozen=True)
class Place:
    """Where a module sits: its stage rank (0 for the ground floor, then 1.. in pipeline order) and
    whether it is command line ("top" for adl.cli, "stage" for adl/<stage>/cli.py, "" for neither)."""

    rank: int
    cli: str

    def label(self) -> str:
        if self.cli == "top":
            return "top cli"
        stage = "ground" if self.rank == 0 else STAGES[self.rank - 1]
        return f"{stage} cli" if self.cli else stage


def place(module: str) -> Place | None:
    """The Place of an adl module, or None when the layout does not say where it belongs."""
    if module in TOP_CLI:
        return Place(len(STAGES) + 1, "top")
    parts = module.split(".")
    if parts[0] != "adl":
        return None
    if len(parts) > 1 and parts[1] in STAGES:
        return Place(STAGES.index(parts[1]) + 1, "stage" if parts[2:] == ["cli"] else "")
    if len(parts) > 1 and parts[1] in GROUND_PACKAGES:
        return Place(0, "")
    if len(parts) == 1 or (len(parts) == 2 and MODULES.get(module, PACKAGE / "x.py").name != "__init__.py"):
        return Place(0, "")  # adl itself and the flat modules of adl/
    return None  # a subpackage that is neither a stage nor ground


def may_import(importer: Place, imported: Place) -> bool:
    if importer.cli == "top":
        return True
    if imported.cli:  # command line is imported only by command line, and never the top one
        return importer.cli == "stage" and imported.cli == "stage" and imported.rank <= importer.rank
    return imported.rank <= importer.rank


# --------------------------------------------------------------------------- reading imports


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def resolve(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The adl modules an import statement in `module` loads (submodules named by ``from X import y``
    included); imports from outside adl give none."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in MODULES]
    base = node.module or ""
    if node.level:  # relative: counted from the importing module's package
        package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in MODULES:
            found.append(sub)
        elif base in MODULES:
            found.append(base)
    return sorted(set(found))


def imports(module: str, *, lazy: bool) -> list[tuple[int, str]]:
    """(line, imported adl module) for every import in `module`; with lazy=False only those that run
    when the module is imported (not inside functions, not under ``if TYPE_CHECKING``)."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.extend((node.lineno, target) for target in resolve(module, node))
            return
        if not lazy:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return
            if isinstance(node, ast.If) and is_type_checking(node.test):
                for child in node.orelse:
                    visit(child)
                return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(TREES[module])
    if lazy:  # "adl.sr.options:SROptions" handed to importlib.import_module is an import too
        for node in ast.walk(TREES[module]):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named = re.fullmatch(r"(adl(?:\.\w+)+)(?::\w+)?", node.value)
                if named and named.group(1) in MODULES:
                    found.append((node.lineno, named.group(1)))
    return sorted(set(found))


def unresolved(module: str) -> list[tuple[int, str]]:
    """(line, name) for every import in `module` of an adl module that does not exist (a path left
    over from before a move), lazy ones included."""
    missing = []
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "adl"]
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "adl"):
            names = [] if resolve(module, node) else [("." * node.level) + (node.module or "")]
        else:
            continue
        missing += [(node.lineno, n) for n in names if n not in MODULES]
    return missing


# --------------------------------------------------------------------------- the tests


def test_every_module_has_a_place_in_the_layout():
    """Protects the stage map itself: a new subpackage (or a stray module) must be given a stage
    here before the import rules below can say anything about it."""
    unplaced = [name for name in MODULES if place(name) is None]
    assert not unplaced, f"modules with no stage in tests/test_layout.py: {unplaced}"


def test_every_adl_import_names_a_module_that_exists():
    """Protects against paths left over from a move: a lazy import of a module that is gone fails
    only when its function first runs, and the stage checks below would not see it."""
    missing = [
        f"{path.relative_to(REPO)}:{line}: {target}"
        for name, path in MODULES.items()
        for line, target in unresolved(name)
    ]
    assert not missing, "imports of adl modules that do not exist:\n" + "\n".join(missing)


def test_imports_only_point_back_along_the_pipeline():
    """Protects the stage order: the ground floor (incl. adl.nets) imports no stage, a stage imports
    only its own and earlier stages, and only command-line modules import command-line modules.
    Imports inside functions count: a lazy import is still a dependency."""
    offences = []
    for name, path in MODULES.items():
        importer = place(name)
        for line, target in imports(name, lazy=True):
            imported = place(target)
            if importer and imported and not may_import(importer, imported):
                offences.append(
                    f"{path.relative_to(REPO)}:{line}: {name} ({importer.label()}) "
                    f"imports {target} ({imported.label()})"
                )
    assert not offences, "imports against the stage order:\n" + "\n".join(offences)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None (a recursive DFS; the graph is small)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_no_import_cycles_at_module_level():
    """Protects import order: modules that import each other at import time break as soon as one of
    them is imported first. Imports inside functions and under TYPE_CHECKING are left out, since
    that is how a needed back-reference is made safe."""
    graph = {name: {target for _, target in imports(name, lazy=False) if target != name} for name in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


def test_find_cycle_finds_cycles():
    """Protects the cycle check above from passing vacuously."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# --------------------------------------------------------------------------- workflow constants


def common_smk() -> str:
    return (REPO / "workflow" / "rules" / "common.smk").read_text()


def wildcard_alternatives() -> dict[str, set[str]]:
    """name -> alternatives of each ``name="a|b|c"`` in common.smk's wildcard_constraints block."""
    text = common_smk()
    block = re.search(r"^wildcard_constraints:\n((?:[ \t]+.*\n|\n)+?)(?=^\S)", text, re.MULTILINE)
    assert block, "no wildcard_constraints block in workflow/rules/common.smk"
    pairs = re.findall(r"""^\s+(\w+)\s*=\s*["']([^"']*)["']""", block.group(1), re.MULTILINE)
    return {name: set(regex.split("|")) for name, regex in pairs}


def config_schema() -> dict:
    return yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_config_schema_enums_match_adl_choices():
    """Protects the workflow's config check: the schema accepts exactly the scales, devices, data
    terms and SR models that adl's command line accepts (adl.choices is their one home)."""
    props = config_schema()["properties"]
    assert props["scales"]["items"]["enum"] == list(choices.SCALES)
    assert tuple(props["device"]["enum"]) == choices.DEVICE_CHOICES
    assert set(props["downsampler"]["properties"]["losses"]["items"]["enum"]) == set(choices.DATA_LOSSES)
    assert tuple(props["sr"]["properties"]["models"]["items"]["enum"]) == choices.SR_MODELS
    assert tuple(props["protocol"]["properties"]["photos"]["enum"]) == choices.PHOTO_SETS


def test_wildcard_constraints_match_adl_choices_and_schema():
    """Protects the rules' file patterns: a scale, data term or SR model that adl accepts but the
    wildcard constraints leave out would make its targets unbuildable (and the reverse would let a
    typo through to a job). The SR methods have no adl.choices constant; they follow the schema."""
    wildcards = wildcard_alternatives()
    assert wildcards["scale"] == {str(s) for s in choices.SCALES}
    assert wildcards["loss"] == set(choices.DATA_LOSSES)
    assert wildcards["model"] == set(choices.SR_MODELS)
    methods = config_schema()["properties"]["sr"]["properties"]["methods"]["items"]["enum"]
    assert wildcards["method"] == set(methods)


def test_workflow_synthetic_kernels_match_adl_choices():
    """Protects the kernel names: common.smk keeps its own copy of adl.choices.KERNEL_NAMES (adl may
    be installed only in the rules' conda env, so the Snakefile cannot import it)."""
    found = re.search(r"^SYNTHETIC_KERNELS\s*=\s*(\[[^\]]*\])", common_smk(), re.MULTILINE)
    assert found, "no SYNTHETIC_KERNELS = [...] in workflow/rules/common.smk"
    assert tuple(ast.literal_eval(found.group(1))) == choices.KERNEL_NAMES


def test_manifest_schema_scales_match_adl_choices():
    """Protects shard readers: a manifest of every scale adl generates validates, and no other."""
    schema = json.loads((PACKAGE / "shards" / "manifest.schema.json").read_text())
    assert schema["properties"]["scale"]["enum"] == list(choices.SCALES)


# --------------------------------------------------------------------------- torch-free modules


def loads_torch(code: str) -> bool:
    """Whether running `code` in a fresh interpreter leaves torch in sys.modules."""
    probe = code + "; import sys; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{code!r} failed:\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1] == "True"


def test_configuration_modules_do_not_import_torch():
    """Protects the workflow's config and dataset checks (common.smk) and ``adl --help``: they import
    these modules before any job runs, and loading torch there would cost seconds per check."""
    for code in (
        "import adl.options, adl.choices, adl.downsampler.options, adl.sr.options, adl.shards.options",
        "import adl.errors, adl.data.split",
        "import adl",
    ):
        assert not loads_torch(code), f"{code!r} loads torch"


# --------------------------------------------------------------------------- shape of the code


def test_no_function_is_longer_than_80_lines():
    """Protects readability: a function over 80 lines does several things and should be split."""
    long = []
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{MODULES[name].relative_to(REPO)}:{node.lineno}: {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_subpackage_init_files_are_empty():
    """Protects the layout's one-way imports: code in a stage's __init__ runs on every import of any
    of its modules. adl/__init__.py holds only __version__; adl/nets/__init__.py only re-exports."""
    for name, path in MODULES.items():
        if path.name != "__init__.py" or name in ("adl", "adl.nets"):
            continue
        assert path.read_text().strip() == "", f"{path.relative_to(REPO)} is not empty"
    statements = [node for node in TREES["adl"].body if not is_docstring(node)]
    names = [ast.unparse(target) for node in statements for target in getattr(node, "targets", [node])]
    assert names == ["__version__"], "adl/__init__.py holds more than __version__"
    for node in TREES["adl.nets"].body:
        where = f"adl/nets/__init__.py:{node.lineno}"
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").startswith("adl.nets."), f"{where} imports from outside adl.nets"
        elif isinstance(node, ast.Assign):
            assert [ast.unparse(t) for t in node.targets] == ["__all__"], f"{where} assigns more than __all__"
        else:
            assert is_docstring(node), f"{where} is not a re-export"


def is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(getattr(node.value, "value", None), str)
