"""The package layering: which subpackage may import which (see each package's docstring)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "allsky_tasks"
# redact: hiding secrets in messages is needed by every layer that prints a URL or remote.
BASE = {"environment", "errors", "progress", "install", "safefs", "redact", "__init__"}
# Importer group -> groups it may import. The base is open to everyone; `cli` to nobody but
# itself, `__main__` and dodo.py (which is outside the package).
RULES: dict[str, set[str]] = {
    "base": {"base"},
    "demo": {"base", "demo"},
    "spec": {"base", "spec"},
    "archive": {"base", "spec", "archive"},
    "service": {"base", "service"},
    "copies": {"base", "spec", "archive", "copies"},
    # backup -> inventory: the chain's prune:<spec> applies the inventory's retention plan.
    "backup": {"base", "spec", "archive", "service", "copies", "inventory", "backup"},
    "inventory": {"base", "spec", "archive", "copies", "inventory"},
    "restore": {"base", "spec", "archive", "service", "backup", "inventory", "copies", "restore"},
    "monitor": {"base", "spec", "archive", "copies", "inventory", "monitor"},
    "schedule": {"base", "schedule"},
    "cli": set(RULES_ALL := {"base", "demo", "spec", "archive", "service", "copies", "backup",
                             "inventory", "restore", "monitor", "schedule", "cli"}),
    "__main__": {"cli"},
}


def group_of(parts: tuple[str, ...]) -> str:
    """The layer of a module given its dotted parts below allsky_tasks."""
    if not parts:
        return "base"
    if len(parts) == 1 and parts[0] in BASE:
        return "base"
    return parts[0]


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers inside `if TYPE_CHECKING:` blocks: type-only imports run nothing."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return lines


def imports_of(path: Path, root: Path, *, type_only: bool = False) -> list[tuple[int, tuple[str, ...]]]:
    """Every allsky_tasks module a file imports (function-level imports included; with
    `type_only`, those under `if TYPE_CHECKING:` too)."""
    rel = path.relative_to(root).with_suffix("").parts
    package = rel[:-1] if rel[-1] != "__init__" else rel[:-1]
    tree = ast.parse(path.read_text(), str(path))
    skip = set() if type_only else _type_checking_lines(tree)
    found: list[tuple[int, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = base + tuple(node.module.split(".")) if node.module else base
            elif node.module and node.module.split(".")[0] == root.name:
                mod = tuple(node.module.split(".")[1:])
            else:
                continue
            if node.module is None:
                # `from . import x`: x may be a module of that package
                for alias in node.names:
                    found.append((node.lineno, mod + (alias.name,)))
            else:
                found.append((node.lineno, mod))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == root.name:
                    found.append((node.lineno, tuple(alias.name.split(".")[1:])))
    return found


def violations(root: Path) -> list[str]:
    """Every import that runs against RULES, as `file:line: a -> b`."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("").parts
        src = group_of(rel)
        allowed = RULES.get(src)
        assert allowed is not None, f"{path}: no layer rule for {src!r}"
        for line, mod in imports_of(path, root):
            dst = group_of(mod)
            if dst == "__version__":  # `from .. import __version__`
                continue
            if dst not in allowed:
                bad.append(f"{path.relative_to(root)}:{line}: {src} -> {dst} ({'.'.join(mod)})")
    return bad


def import_graph(root: Path) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    """Module -> the package's modules it imports, type-only and function-level imports included."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        modules[parts[:-1] if parts[-1] == "__init__" else parts] = path
    graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for mod, path in modules.items():
        graph[mod] = set()
        for _, target in imports_of(path, root, type_only=True):
            while target and target not in modules:  # `from . import name`: a name, not a module
                target = target[:-1]
            if target != mod:
                graph[mod].add(target)
    return graph


def import_cycles(root: Path) -> list[str]:
    """Each group of modules that import each other, directly or round a longer circle (Tarjan)."""
    graph = import_graph(root)
    index: dict[tuple[str, ...], int] = {}
    low: dict[tuple[str, ...], int] = {}
    stack: list[tuple[str, ...]] = []
    found: list[str] = []

    def visit(mod: tuple[str, ...]) -> None:
        index[mod] = low[mod] = len(index)
        stack.append(mod)
        for dep in sorted(graph[mod]):
            if dep not in index:
                visit(dep)
                low[mod] = min(low[mod], low[dep])
            elif dep in stack:
                low[mod] = min(low[mod], index[dep])
        if low[mod] == index[mod]:
            group = [stack.pop()]
            while group[-1] != mod:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(" <-> ".join(sorted(".".join(m) for m in group)))

    for mod in sorted(graph):
        if mod not in index:
            visit(mod)
    return sorted(found)


def test_package_has_no_import_cycles() -> None:
    # Two modules that need each other are one concern, or share a piece that belongs in a third.
    assert import_cycles(PKG) == []


@pytest.mark.parametrize("where,text,cycle", [
    ("copies/s3_multipart.py", "if TYPE_CHECKING:\n    from .s3 import S3Target\n",
     "copies.s3 <-> copies.s3_multipart"),
    ("restore/journal.py", "def _late():\n    from .recovery import recover_all\n",
     "restore.journal <-> restore.recovery"),
    ("service/privilege.py", "from .commands import run_command\n", "service.commands <-> service.privilege"),
])
def test_the_cycle_check_finds_a_planted_cycle(tmp_path: Path, where: str, text: str, cycle: str) -> None:
    copy = tmp_path / "allsky_tasks"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / where
    target.write_text(target.read_text() + "\n\n" + text)
    assert import_cycles(copy) == [cycle]


def test_package_follows_its_layers() -> None:
    assert violations(PKG) == []


def test_every_subpackage_states_its_layer() -> None:
    for init in PKG.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc, f"{init}: no docstring"
        if init.parent.name != "cli":
            assert "Layer:" in doc, f"{init}: the docstring does not say what it may import"


@pytest.mark.parametrize("where,line", [
    ("archive/manifest.py", "from ..backup.pack import pack\n"),
    ("archive/io.py", "    from ..restore import run\n"),
    ("inventory/listing.py", "from allsky_tasks.cli import main\n"),
    ("spec/load.py", "from .. import archive\n"),
])
def test_the_check_fails_on_a_forbidden_import(tmp_path: Path, where: str, line: str) -> None:
    copy = tmp_path / "allsky_tasks"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / where
    body = line if line.startswith(" ") else "    " + line
    target.write_text(target.read_text() + "\n\ndef _forbidden():\n" + body)
    found = violations(copy)
    assert len(found) == 1 and found[0].startswith(where), found


def test_type_only_imports_are_allowed(tmp_path: Path) -> None:
    copy = tmp_path / "allsky_tasks"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "archive" / "io.py"
    target.write_text(target.read_text() + "\nif TYPE_CHECKING:\n    from ..backup.scan import ScanSummary\n")
    assert violations(copy) == []
