"""The layers of ``src/htr_pipeline``: the library never imports Kedro or MLflow, and no two packages import
each other (ARCHITECTURE.md draws the picture these tests hold true).

The imports are read from the source (every ``import`` statement, also inside functions), and followed
through the project's own modules, so a library module that reaches Kedro through another module fails too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "htr_pipeline"

KEDRO_SIDE = (
    "pipelines",
    "datasets",
    "hooks",
    "settings",
    "pipeline_registry",
    "project_config",
    "cli",
    "__main__",
    "bench",
    "gpu_check",
)
"""Modules (or packages) that adapt the library to Kedro: they may import Kedro. ``cli``, ``__main__``, ``bench``
and ``gpu_check`` are command-line entry points that read the Kedro project's ``conf/``."""

MLFLOW_SIDE = ("tracking", "hooks")
"""The only modules that import MLflow themselves."""

FRAMEWORKS = ("kedro", "kedro_datasets", "kedro_mlflow", "kedro_viz", "mlflow")


def module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def imported_names(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against ``module``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            names.add(stem)
            names.update(f"{stem}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``module -> imported names`` for every module of the package at ``root``."""
    return {
        module_name(path, root, package): imported_names(path, module_name(path, root, package))
        for path in sorted(root.rglob("*.py"))
    }


def project_modules_of(names: Iterable[str], graph: Mapping[str, set[str]]) -> set[str]:
    """The project modules among imported names (``pkg.mod.func`` is the module ``pkg.mod``)."""
    found = set()
    for name in names:
        while name and name not in graph:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def is_under(module: str, package: str, prefixes: Iterable[str]) -> bool:
    relative = module.removeprefix(f"{package}.")
    return any(relative == prefix or relative.startswith(f"{prefix}.") for prefix in prefixes)


def framework_paths(graph: Mapping[str, set[str]], package: str, allowed: Iterable[str], frameworks: Iterable[str]):
    """For each module outside ``allowed`` that reaches a framework: the chain of imports that gets there."""
    allowed, frameworks = tuple(allowed), tuple(frameworks)
    offences: dict[str, list[str]] = {}
    for start in graph:
        if is_under(start, package, allowed) or start == package:
            continue
        chain = _chain_to_framework(start, graph, frameworks)
        if chain:
            offences[start] = chain
    return offences


def _chain_to_framework(start: str, graph: Mapping[str, set[str]], frameworks: tuple[str, ...]) -> list[str]:
    seen = {start}
    queue: list[list[str]] = [[start]]
    while queue:
        chain = queue.pop(0)
        names = graph[chain[-1]]
        for name in sorted(names):
            if name.split(".")[0] in frameworks:
                return [*chain, name]
        for module in sorted(project_modules_of(names, graph) - seen):
            seen.add(module)
            queue.append([*chain, module])
    return []


def package_of(module: str, package: str) -> str:
    """The first level below the package: ``htr_pipeline.data.sources`` -> ``data``; ``htr_pipeline.config``
    -> ``config``."""
    return module.removeprefix(f"{package}.").split(".")[0]


def package_cycles(graph: Mapping[str, set[str]], package: str) -> list[list[str]]:
    """Cycles between the first-level packages and modules (each cycle once, as a path back to its start)."""
    edges: dict[str, set[str]] = {}
    for module, names in graph.items():
        if module == package:
            continue
        source = package_of(module, package)
        targets = {package_of(target, package) for target in project_modules_of(names, graph) if target != package}
        edges.setdefault(source, set()).update(targets - {source})
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return cycles


@pytest.fixture(scope="module")
def project_graph() -> dict[str, set[str]]:
    return import_graph(PACKAGE_ROOT, "htr_pipeline")


def test_the_library_never_reaches_kedro(project_graph):
    offences = framework_paths(project_graph, "htr_pipeline", KEDRO_SIDE, ("kedro", "kedro_datasets", "kedro_viz"))
    assert offences == {}, "\n".join(" -> ".join(chain) for chain in offences.values())


def test_only_tracking_and_the_hooks_import_mlflow_and_the_library_never_reaches_it(project_graph):
    direct = {
        module
        for module, names in project_graph.items()
        if any(name.split(".")[0] in ("mlflow", "kedro_mlflow") for name in names)
    }
    assert {package_of(module, "htr_pipeline") for module in direct} <= set(MLFLOW_SIDE)
    offences = framework_paths(project_graph, "htr_pipeline", (*KEDRO_SIDE, *MLFLOW_SIDE), ("mlflow", "kedro_mlflow"))
    assert offences == {}, "\n".join(" -> ".join(chain) for chain in offences.values())


def test_no_two_packages_import_each_other(project_graph):
    assert package_cycles(project_graph, "htr_pipeline") == []


def _write_package(root: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_the_checks_catch_a_library_module_reaching_kedro_through_another(tmp_path):
    root = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "data/__init__.py": "",
            "data/reader.py": "from pkg.datasets.store import Store\n",
            "datasets/__init__.py": "",
            "datasets/store.py": "def f():\n    from kedro.io import AbstractDataset\n",
            "models.py": "import torch\n",
        },
    )
    offences = framework_paths(import_graph(root, "pkg"), "pkg", ("datasets",), ("kedro",))
    assert offences == {"pkg.data.reader": ["pkg.data.reader", "pkg.datasets.store", "kedro.io"]}


def test_the_checks_catch_two_packages_importing_each_other(tmp_path):
    root = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "config.py": "from pkg.data.splits import NAMES\n",
            "data/__init__.py": "",
            "data/splits.py": "NAMES = ()\n",
            "data/sources.py": "from .. import config\nfrom ..config import X\n",
            "metrics.py": "from pkg import config\n",
        },
    )
    assert package_cycles(import_graph(root, "pkg"), "pkg") == [["config", "data", "config"]]
