"""The project's layers, checked against the static import graph of every module.

Each ``*.py`` under the project packages is parsed with :mod:`ast` (nothing is
imported), and every ``import x`` / ``from x import y`` in it counts: module level,
inside functions, under ``if TYPE_CHECKING:``, in ``try``/``except``. Relative
imports are resolved; ``from pkg import name`` means the module ``pkg.name`` when
``pkg/name.py`` or ``pkg/name/__init__.py`` exists, else ``pkg``. Only imports of
project packages are kept. Dynamic imports (``importlib.import_module("...")``)
are not seen. Importing ``a.b`` is taken as an arrow to ``a.b`` alone, not also
to ``a``, so a package ``__init__`` that imports its own submodules is no circle.

The layers (``LAYERS``), lowest first; an arrow may only run down:

* 0 ``core`` (leaf): events, errors, the config base, the plugin and adapter
  ports. It imports nothing else of the project.
* 1 ``storage``, ``agents``, ``workers``, ``rag``, ``sandbox`` (foundation). These may import
  ``core`` and one another (circles between them are still forbidden).
* 2 ``plugins``. Each ``plugins.<name>`` is a unit of its own: a plugin never
  imports another plugin.
* 3 ``bot`` (roof): app wiring, router, plugin manager, CLI, adapters.

Why: a layered, acyclic graph keeps the leaf reusable by plugins and adapters,
keeps the import order (and so start-up) predictable, and lets each layer be
tested without the ones above it. The walker is self-tested on a small tree, so
these checks cannot pass because it found nothing.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "core": 0,
    "storage": 1,
    "agents": 1,
    "workers": 1,
    "rag": 1,
    "sandbox": 1,
    "plugins": 2,
    "bot": 3,
}
"""Top-level project package -> layer (0 = leaf, 3 = roof)."""

SAME_LAYER_ALLOWED: frozenset[int] = frozenset({1})
"""Layers whose packages may import one another (only the foundation)."""

PLUGINS = "plugins"
NOT_PROJECT_DIRS: frozenset[str] = frozenset({"tests", "bench", "build", "dist"})
SKIPPED_DIRS: frozenset[str] = frozenset({"__pycache__", "node_modules"})

# The real graph has ~75 modules and ~200 arrows (Dec 2025); these floors only catch a
# walker that silently finds (almost) nothing.
MIN_REAL_MODULES = 50
MIN_REAL_EDGES = 100

Successors = Mapping[str, Iterable[str]]


@dataclass(frozen=True)
class ImportGraph:
    """The static import graph of the project's modules.

    Attributes:
        modules: Dotted names of every module found on disk.
        edges: ``(importer, imported)`` pairs; ``imported`` may name a module
            that does not exist on disk (it is still a project import).
    """

    modules: frozenset[str]
    edges: frozenset[tuple[str, str]]

    def successors(self) -> dict[str, set[str]]:
        """Return the adjacency sets of the graph, one entry per node."""
        succ: dict[str, set[str]] = {m: set() for m in self.modules}
        for src, dst in self.edges:
            succ.setdefault(src, set()).add(dst)
            succ.setdefault(dst, set())
        return succ


# --- the walker -----------------------------------------------------------------------


def _is_skipped(path: Path, root: Path) -> bool:
    """Tell whether ``path`` lies in a cache, hidden or virtual-environment folder."""
    parts = path.relative_to(root).parts[:-1]
    return any(p in SKIPPED_DIRS or p.startswith(".") for p in parts)


def module_files(root: Path) -> dict[str, Path]:
    """Map the dotted name of every module under the project packages to its file.

    Args:
        root: The repository root.

    Returns:
        ``{"bot.app": Path(...), "bot": Path(".../bot/__init__.py"), ...}``.
    """
    found: dict[str, Path] = {}
    for package in LAYERS:
        if not (root / package).is_dir():
            continue
        for path in sorted((root / package).rglob("*.py")):
            if not _is_skipped(path, root):
                found[module_name(path, root)] = path
    return found


def module_name(path: Path, root: Path) -> str:
    """Return the dotted module name of ``path`` (``pkg/__init__.py`` is ``pkg``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _from_base(node: ast.ImportFrom, importer: str, is_package: bool) -> str | None:
    """Return the absolute module a ``from ... import`` names, or None if it is invalid."""
    if node.level == 0:
        return node.module
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level - 1 > len(package):
        return None
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def _targets(node: ast.AST, importer: str, is_package: bool, modules: set[str]) -> Iterator[str]:
    """Yield the absolute modules one import statement brings in."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = _from_base(node, importer, is_package)
        if not base:
            return
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            yield candidate if alias.name != "*" and candidate in modules else base


def imports_of(path: Path, importer: str, modules: set[str]) -> set[str]:
    """Return the project modules that the file ``path`` imports anywhere.

    Args:
        path: The module's file.
        importer: Its dotted name.
        modules: Every project module on disk (to resolve ``from pkg import name``).

    Returns:
        The imported modules whose top-level package is in ``LAYERS``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        found.update(_targets(node, importer, is_package, modules))
    return {t for t in found if t.split(".")[0] in LAYERS}


def build_graph(root: Path) -> ImportGraph:
    """Parse every project module under ``root`` into an :class:`ImportGraph`."""
    files = module_files(root)
    modules = set(files)
    edges = {
        (name, target) for name, path in files.items() for target in imports_of(path, name, modules)
    }
    return ImportGraph(frozenset(modules), frozenset(edges))


def top_level_packages(root: Path) -> set[str]:
    """Return the folders at ``root`` that are Python packages of the project."""
    return {
        d.name
        for d in root.iterdir()
        if d.is_dir()
        and (d / "__init__.py").is_file()
        and d.name not in NOT_PROJECT_DIRS
        and not d.name.startswith(".")
    }


# --- layers and units -----------------------------------------------------------------


def package_of(module: str) -> str:
    """Return the top-level package of a dotted module name."""
    return module.split(".")[0]


def layer_of(module: str) -> int:
    """Return the layer of a module's top-level package."""
    return LAYERS[package_of(module)]


def unit_of(module: str) -> str:
    """Return the package-graph node of a module: its top-level package or its plugin."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == PLUGINS and len(parts) > 1 else parts[0]


def _is_plugin_unit(unit: str) -> bool:
    """Tell whether a package-graph node is one plugin (``plugins.<name>``)."""
    return unit.startswith(f"{PLUGINS}.")


def arrow_allowed(src: str, dst: str) -> bool:
    """Tell whether the module ``src`` may import the module ``dst``."""
    if package_of(src) == package_of(dst):
        units = unit_of(src), unit_of(dst)
        return not (all(map(_is_plugin_unit, units)) and units[0] != units[1])
    high, low = layer_of(src), layer_of(dst)
    return low < high or (low == high and high in SAME_LAYER_ALLOWED)


def upward_arrows(graph: ImportGraph) -> list[str]:
    """List every forbidden arrow as ``module -> imported (layer a -> layer b)``."""
    return [
        f"{src} -> {dst} (layer {layer_of(src)} -> layer {layer_of(dst)})"
        for src, dst in sorted(graph.edges)
        if not arrow_allowed(src, dst)
    ]


def package_edges(graph: ImportGraph) -> dict[tuple[str, str], tuple[str, str]]:
    """Map each arrow between different units to one module arrow that witnesses it."""
    witnesses: dict[tuple[str, str], tuple[str, str]] = {}
    for src, dst in sorted(graph.edges):
        key = unit_of(src), unit_of(dst)
        if key[0] != key[1]:
            witnesses.setdefault(key, (src, dst))
    return witnesses


# --- cycles ---------------------------------------------------------------------------


def strongly_connected_components(succ: Successors) -> list[list[str]]:
    """Return the strongly connected components of a graph (Tarjan, iterative).

    Args:
        succ: Node -> its successors; every node must be a key.

    Returns:
        Each component as a sorted list, in reverse topological order.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []
    for root in sorted(succ):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(succ[root])))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    components.append(_pop_component(stack, node))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(succ[child]))))
            elif child in stack:
                low[node] = min(low[node], index[child])
    return components


def _pop_component(stack: list[str], root: str) -> list[str]:
    """Pop the Tarjan stack down to ``root`` and return those nodes, sorted."""
    component = stack[stack.index(root) :]
    del stack[stack.index(root) :]
    return sorted(component)


def shortest_cycle(succ: Successors, members: list[str]) -> list[str]:
    """Return a shortest cycle through the first member, within ``members``.

    Args:
        succ: The graph.
        members: A strongly connected component with more than one node.

    Returns:
        The cycle as a node list that starts and ends with ``members[0]``.
    """
    start, allowed = members[0], set(members)
    parent: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(succ[node]):
            if child == start and node != start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if child in allowed and child not in parent:
                parent[child] = node
                queue.append(child)
    return [start]


def module_cycles(graph: ImportGraph) -> list[str]:
    """Describe every module-level circle: each SCC of two or more, and each self-import."""
    succ = graph.successors()
    found = [f"{m} imports itself" for m in sorted(succ) if m in succ[m]]
    for component in strongly_connected_components(succ):
        if len(component) > 1:
            cycle = " -> ".join(shortest_cycle(succ, component))
            found.append(f"{len(component)} modules {component}, e.g. {cycle}")
    return found


def package_cycles(graph: ImportGraph) -> list[str]:
    """Describe every circle between units, each arrow with a module arrow behind it."""
    witnesses = package_edges(graph)
    succ: dict[str, set[str]] = {unit_of(m): set() for m in graph.successors()}
    for src, dst in witnesses:
        succ[src].add(dst)
    found: list[str] = []
    for component in strongly_connected_components(succ):
        if len(component) > 1:
            cycle = shortest_cycle(succ, component)
            proofs = ["{} -> {}".format(*witnesses[pair]) for pair in itertools.pairwise(cycle)]
            found.append(f"{' -> '.join(cycle)} ({'; '.join(proofs)})")
    return found


# --- the tests ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    """The static import graph of the repository."""
    return build_graph(ROOT)


def test_every_module_belongs_to_a_layer(graph: ImportGraph) -> None:
    """Every top-level package is placed in ``LAYERS`` on purpose."""
    unplaced = sorted(top_level_packages(ROOT) - set(LAYERS))
    assert unplaced == [], f"top-level packages missing from LAYERS: {unplaced}"
    assert {package_of(m) for m in graph.modules} <= set(LAYERS)


def test_no_arrow_runs_up(graph: ImportGraph) -> None:
    """No module imports up, sideways outside the foundation, or into another plugin."""
    offending = upward_arrows(graph)
    assert offending == [], "arrows that run up or sideways:\n" + "\n".join(offending)


def test_no_circles_between_packages(graph: ImportGraph) -> None:
    """The graph of top-level packages (each plugin its own node) has no circle."""
    cycles = package_cycles(graph)
    assert cycles == [], "circles between packages:\n" + "\n".join(cycles)


def test_no_circles_between_modules(graph: ImportGraph) -> None:
    """The graph of modules has no circle (no SCC of two or more, no self-import)."""
    cycles = module_cycles(graph)
    assert cycles == [], "circles between modules:\n" + "\n".join(cycles)


def _write(root: Path, relative: str, source: str = "") -> None:
    """Write one file of a fixture tree, creating its folders."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def _fixture_tree(root: Path) -> None:
    """Build a small project with one upward arrow, one plugin arrow and two circles."""
    files = {
        "core/__init__.py": "",
        "core/events.py": "def f() -> None:\n    import workers.w\n",
        "storage/__init__.py": "from . import a\n",
        "storage/a.py": "from storage import b\n",
        "storage/b.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .a import thing\n"
            "from agents.x import y\n"
        ),
        "agents/__init__.py": "",
        "agents/x.py": "from ..storage import jobs\nfrom core import events\n",
        "plugins/__init__.py": "",
        "plugins/p/__init__.py": "from plugins.q import helper\n",
        "plugins/q/__init__.py": "",
        "bot/__init__.py": "",
        "bot/app.py": "import os\nfrom plugins import p\n",
        "workers/__init__.py": "",
        "workers/w.py": "",
        "tests/test_x.py": "import bot.app\n",
    }
    for relative, source in files.items():
        _write(root, relative, source)


def test_the_walker_finds_what_it_should(tmp_path: Path, graph: ImportGraph) -> None:
    """The graph builder and the checks catch a planted arrow up and planted circles."""
    _fixture_tree(tmp_path)
    planted = build_graph(tmp_path)
    assert ("storage", "storage.a") in planted.edges  # `from . import a` in an __init__
    assert ("storage.b", "storage.a") in planted.edges  # relative, under TYPE_CHECKING
    assert ("agents.x", "storage") in planted.edges  # `from ..storage import jobs`
    assert ("agents.x", "core.events") in planted.edges  # `from core import events`
    assert ("bot.app", "plugins.p") in planted.edges
    assert not any(dst == "os" or src.startswith("tests") for src, dst in planted.edges)
    assert upward_arrows(planted) == [
        "core.events -> workers.w (layer 0 -> layer 1)",
        "plugins.p -> plugins.q (layer 2 -> layer 2)",
    ]
    assert package_cycles(planted) == [
        "agents -> storage -> agents (agents.x -> storage; storage.b -> agents.x)"
    ]
    assert module_cycles(planted) == [
        "4 modules ['agents.x', 'storage', 'storage.a', 'storage.b'],"
        " e.g. agents.x -> storage -> storage.a -> storage.b -> agents.x"
    ]
    assert len(graph.modules) > MIN_REAL_MODULES, sorted(graph.modules)
    assert len(graph.edges) > MIN_REAL_EDGES, sorted(graph.edges)
