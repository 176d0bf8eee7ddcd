"""The package's import graph: no cycle among nuage_ryu modules, no import kept only for its side effects.

Read from the source with ``ast`` (nothing is imported), counting module-level imports and the ones inside
functions alike: a lazy import inside a function still ties the two modules together, it only hides the
cycle from the interpreter until the function runs.
"""

from __future__ import annotations

import ast
import configparser
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "nuage_ryu"

# Cycles that exist outside the part of the tree this test was written with, listed so that the test
# checks everything else today; each entry is one cycle as the sorted tuple of its modules. Empty it as
# the cycles are removed (the test fails when an entry no longer is a cycle, so the list cannot go stale).
KNOWN_CYCLES: frozenset[tuple[str, ...]] = frozenset()

# Imports of third-party modules that are needed for their side effect, with why (a nuage_ryu module
# is never imported that way).
SIDE_EFFECT_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {
    # Probes which OpenFlow framework is installed; the names come from it later, by FRAMEWORK.
    ("nuage_ryu.framework", "os_ken"): "framework probe",
    # os-ken registers its command-line options (OpenFlow listener, logging) on import, as in ryu-manager.
    ("nuage_ryu.cmd.manager", "os_ken.log"): "os-ken option registration",
    ("nuage_ryu.cmd.manager", "os_ken.controller.controller"): "os-ken option registration",
}


def package_roots() -> dict[str, Path]:
    """Folders that are installed as parts of the package, by dotted name (``setup.cfg``'s package_dir)."""
    roots = {PACKAGE: REPO / PACKAGE}
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    for line in cfg.get("options", "package_dir", fallback="").splitlines():
        name, sep, folder = line.partition("=")
        if sep and name.strip().startswith(PACKAGE + "."):
            roots[name.strip()] = REPO / folder.strip()
    return roots


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for prefix, root in package_roots().items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([prefix, *parts])] = path
    return out


@dataclass(frozen=True)
class Import:
    target: str  # the module the statement loads (dotted)
    bound: tuple[str, ...]  # names it binds in the importing module
    line: int


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    """Every import statement of a module (any depth), resolved to the module it loads."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                out.append(Import(alias.name, (bound,), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(module, is_package, node)
            for alias in node.names:
                # "from pkg import sub" loads the submodule pkg.sub when there is one. Outside the package
                # there is no telling a submodule from a name: it is named base.name.
                sub = f"{base}.{alias.name}"
                target = sub if sub in known or base not in known else base
                out.append(Import(target, (alias.asname or alias.name,), node.lineno))
    return out


def import_graph() -> dict[str, set[str]]:
    """nuage_ryu module -> the nuage_ryu modules it imports."""
    mods = modules()
    known = set(mods)
    return {name: {i.target for i in imports_of(name, path, known) if i.target in known and i.target != name}
            for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted tuple."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [("a", "b", "c")]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_resolved_to_modules():
    graph = import_graph()
    assert f"{PACKAGE}.vrs.pipeline" in graph[f"{PACKAGE}.vrs.compile.static"]  # from nuage_ryu.vrs import pipeline
    assert f"{PACKAGE}.vrs.compile.base" in graph[f"{PACKAGE}.vrs.compile.acl"]  # from ... import name


def test_no_import_cycle_among_package_modules():
    found = set(cycles(import_graph()))
    unexpected = sorted(found - KNOWN_CYCLES)
    assert not unexpected, f"import cycles: {unexpected}"
    fixed = sorted(KNOWN_CYCLES - found)
    assert not fixed, f"no longer cycles, remove from KNOWN_CYCLES: {fixed}"


_NOQA_UNUSED = re.compile(r"#\s*noqa\b[^#\n]*\bF401\b")


def _used_names(tree: ast.AST) -> set[str]:
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for node in ast.walk(tree):  # names re-exported through __all__ count as used
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            used |= {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return used


def test_no_module_is_imported_only_for_its_side_effects():
    mods = modules()
    known = set(mods)
    offenders = []
    for name, path in mods.items():
        source = path.read_text()
        lines = source.splitlines()
        used = _used_names(ast.parse(source))
        for imp in imports_of(name, path, known):
            allowed = (name, imp.target) in SIDE_EFFECT_IMPORTS_ALLOWED
            if _NOQA_UNUSED.search(lines[imp.line - 1]) and not allowed:
                offenders.append(f"{path.relative_to(REPO)}:{imp.line}: import kept with noqa F401")
            elif imp.target in known and not set(imp.bound) & used:
                offenders.append(f"{path.relative_to(REPO)}:{imp.line}: {imp.target} imported but never used")
    assert not offenders, "\n".join(offenders)


def test_allowed_side_effect_imports_still_exist():
    mods = modules()
    known = set(mods)
    present = {(name, imp.target) for name, path in mods.items() for imp in imports_of(name, path, known)}
    assert set(SIDE_EFFECT_IMPORTS_ALLOWED) <= present, set(SIDE_EFFECT_IMPORTS_ALLOWED) - present
