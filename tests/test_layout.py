"""The package's shape: no import cycle between modules, no module over the size
limit, and the README's layout section names every module and package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src"
MAX_LINES = 410


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of phasegate imported at module level (not under TYPE_CHECKING,
    not inside functions): the imports that run when the module loads."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in SRC.rglob("*.py")}
    known = set(files)
    return {name: _imports(path, name, known) for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the chain of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _without_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A submodule importing its own package's ``__init__`` (which imports the
    submodules) is how a package re-exports: not a cycle between modules."""
    return {name: {m for m in deps if not name.startswith(f"{m}.")} for name, deps in graph.items()}


def test_no_import_cycle() -> None:
    cycle = _cycle(_without_packages(_graph()))
    assert cycle is None, " -> ".join(cycle or [])


def test_no_module_over_the_size_limit() -> None:
    sizes = {_module(p): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


def _layout() -> str:
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    return layout[: layout.index("\n## ", 4)]


def test_the_readme_layout_names_every_module() -> None:
    """Each top-level module and package of src/phasegate, and each module of
    mappings/ (where a newcomer adds a type), appears in the README's layout."""
    layout = _layout()
    pkg = SRC / "phasegate"
    wanted = [p for p in pkg.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()]
    wanted += list((pkg / "mappings").glob("*.py"))
    missing = [
        str(p.relative_to(pkg))
        for p in sorted(wanted)
        if p.name != "__init__.py" and not re.search(rf"(?<![\w]){re.escape(p.stem)}\b", layout)
    ]
    assert missing == []


def test_the_readme_layout_names_only_what_exists() -> None:
    """Every folder the layout names (``name/``) exists, in the repository or the package."""
    named = set(re.findall(r"(?<![\w/.])([a-z_]+)/", _layout()))
    folders = {p.name for p in ROOT.iterdir() if p.is_dir()}
    folders |= {p.name for d in ("tests", "examples") for p in (ROOT / d).iterdir() if p.is_dir()}
    folders |= {p.name for p in SRC.rglob("*") if p.is_dir()}
    assert named - folders == set()
