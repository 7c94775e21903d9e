"""The code stays as the house rules say: ruff-clean, formatted, and mypy-clean on the typed package."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_check() -> None:
    result = _run(str(BIN / "ruff"), "check", "pyingress", "tests", "bench", "fuzz")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", "pyingress", "tests", "bench", "fuzz")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def _imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports anywhere (functions included: a local import is still an edge), except
    under ``if TYPE_CHECKING``.  ``from package import submodule`` is an edge to the submodule."""
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if ast.unparse(node.test).endswith("TYPE_CHECKING"):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module is None:
                return
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {node.module})

    Visitor().visit(ast.parse(path.read_text()))
    return found & modules


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_package_has_no_import_cycles() -> None:
    paths = {_module_name(path): path for path in (REPO / "pyingress").rglob("*.py")}
    graph = {name: _imported_modules(path, set(paths)) - {name} for name, path in paths.items()}
    cycles = []
    for start in graph:
        # A path from one of start's imports back to start is a cycle through start.
        seen: set[str] = set()
        todo = [(module, [start, module]) for module in graph[start]]
        while todo:
            module, trail = todo.pop()
            if module == start:
                cycles.append(" → ".join(trail))
                break
            if module in seen:
                continue
            seen.add(module)
            todo.extend((after, [*trail, after]) for after in graph[module])
    assert cycles == [], "\n".join(cycles)
