"""The import rules between the project's layers, checked from the source (no imports run).

The layers, top to bottom: ``evals`` -> ``agent`` -> ``graph`` -> ``tools`` -> ``policies`` and
``skills``. A layer may import the layers below it, never one above; everything imports as
``mediavault.<layer>``, never as a bare top-level ``agent``, ``graph``, ... (those names belong
to other distributions). ``python tests/import_layers.py`` prints the arrows between layers.
"""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT_PACKAGE = "mediavault"
LAYERS = ("agent", "graph", "tools", "evals", "policies", "skills")

#: What each layer must not import (other layers of this project).
FORBIDDEN: dict[str, frozenset[str]] = {
    "graph": frozenset({"agent", "evals"}),
    "tools": frozenset({"agent", "graph", "evals"}),
    "policies": frozenset({"agent", "graph", "tools", "evals", "skills"}),
    "skills": frozenset({"agent", "graph", "tools", "evals", "policies"}),
    "agent": frozenset({"evals"}),
    "evals": frozenset(),
}

#: Folders whose Python files (and notebooks) must use the one import root too.
OTHER_CODE = ("mediavault", "tests", "benchmarks", "notebooks", "examples")


@dataclass(frozen=True)
class Import:
    """One imported module name, where it appears."""

    path: Path
    line: int
    module: str
    #: ``x.y`` from ``from x import y``: ``y`` may be a submodule or just a name in ``x``.
    named: bool = False


@dataclass(frozen=True)
class Violation:
    where: str
    rule: str

    def __str__(self) -> str:
        return f"{self.where}: {self.rule}"


def module_name(path: Path, repo: Path = REPO) -> str:
    """``agent/ops/batch.py`` -> ``mediavault.agent.ops.batch`` (a package's ``__init__`` too)."""
    parts = list(path.relative_to(repo).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts and parts[0] == ROOT_PACKAGE:
        return ".".join(parts)
    return ".".join([ROOT_PACKAGE, *parts])


def imports_in_source(source: str, path: Path, *, package: str) -> Iterator[Import]:
    """Every module a source file imports, anywhere in it (functions and TYPE_CHECKING too).

    Relative imports are resolved against ``package``; ``from x import y`` counts both ``x``
    and ``x.y`` (``y`` may be a submodule), so ``from mediavault import agent`` is seen.
    """
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield Import(path, node.lineno, module)
            for alias in node.names:
                if alias.name != "*":
                    yield Import(path, node.lineno, f"{module}.{alias.name}", named=True)


def notebook_source(path: Path) -> str:
    """The code cells of a notebook as one Python source (shell and magic lines dropped)."""
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    lines: list[str] = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        lines += [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def imports_of(path: Path, repo: Path = REPO) -> list[Import]:
    if path.suffix == ".ipynb":
        return list(imports_in_source(notebook_source(path), path, package=ROOT_PACKAGE))
    name = module_name(path, repo)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return list(imports_in_source(path.read_text(encoding="utf-8"), path, package=package))


def layer_of(module: str) -> str | None:
    """The layer a ``mediavault.<layer>...`` module belongs to, else None."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == ROOT_PACKAGE and parts[1] in LAYERS:
        return parts[1]
    return None


def bare_layer(module: str) -> str | None:
    """The layer name when ``module`` is a bare top-level layer (``graph.nodes`` -> graph)."""
    head = module.split(".")[0]
    return head if head in LAYERS else None


def check_file(path: Path, repo: Path = REPO) -> list[Violation]:
    """The rules one file breaks."""
    relative = path.relative_to(repo)
    own = relative.parts[0] if relative.parts[0] in LAYERS else None
    found: list[Violation] = []
    for item in imports_of(path, repo):
        where = f"{relative}:{item.line}"
        bare = bare_layer(item.module)
        if bare is not None and item.named:
            continue  # reported once, for the module it is imported from
        if bare is not None:
            found.append(Violation(where, f"imports bare `{item.module}`; use "
                                          f"`{ROOT_PACKAGE}.{item.module}`"))
            continue
        target = layer_of(item.module)
        if own is not None and target is not None and target in FORBIDDEN[own]:
            found.append(Violation(where, f"{own} must not import {target} "
                                          f"(`{item.module}`)"))
    return list(dict.fromkeys(found))


def project_files(repo: Path = REPO) -> list[Path]:
    """Every Python file and notebook the rules apply to."""
    files: list[Path] = []
    for folder in (*LAYERS, *OTHER_CODE):
        root = repo / folder
        if root.is_dir():
            files += [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]
            files += [p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    return sorted(files)


def violations(files: Iterable[Path] | None = None, repo: Path = REPO) -> list[Violation]:
    return [v for path in (files if files is not None else project_files(repo))
            for v in check_file(path, repo)]


def arrows(repo: Path = REPO) -> dict[tuple[str, str], tuple[int, int]]:
    """Imports between layers: (from, to) -> (files that import, import statements)."""
    files: dict[tuple[str, str], set[Path]] = defaultdict(set)
    statements: Counter[tuple[str, str]] = Counter()
    for layer in LAYERS:
        for path in sorted((repo / layer).rglob("*.py")):
            seen: set[tuple[int, str]] = set()
            for item in imports_of(path, repo):
                target = layer_of(item.module) or bare_layer(item.module)
                if target is None or target == layer:
                    continue
                files[(layer, target)].add(path)
                seen.add((item.line, target))  # one statement may name several modules
            for _, target in seen:
                statements[(layer, target)] += 1
    return {pair: (len(paths), statements[pair]) for pair, paths in sorted(files.items())}


if __name__ == "__main__":
    for (source, target), (file_count, statement_count) in arrows().items():
        print(f"{source} -> {target}: {file_count} files, {statement_count} imports")
    problems = violations()
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)
