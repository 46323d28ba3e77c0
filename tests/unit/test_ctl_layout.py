"""shiptrackctl's package shape: one way to register a command, by public names, and no import cycle."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

from ctl_tree import command_handlers

import shiptrackd.ctl
from shiptrackd.ctl.main import GROUPS, build_parser

CTL_DIR = Path(shiptrackd.ctl.__file__).parent
MODULES = sorted(p.stem for p in CTL_DIR.glob("*.py") if p.stem not in ("__init__", "__main__"))
ENTRY_POINTS = ("__init__", "__main__", "main")  # the only modules allowed to import main


def _ctl_imports(name: str) -> set[str]:
    """The ctl modules that module *name* imports, at its top or inside functions."""
    tree = ast.parse((CTL_DIR / f"{name}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x, y
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("shiptrackd.ctl."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("shiptrackd.ctl."))
    return found & set(MODULES)


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{path.name}: {alias.name} from {node.module}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]


def test_each_ctl_module_imports_alone() -> None:
    """Every ctl module can be the first one imported in a fresh interpreter (no order-dependent cycle)."""
    for name in MODULES:
        done = subprocess.run(
            [sys.executable, "-c", f"import shiptrackd.ctl.{name}"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"import shiptrackd.ctl.{name}: {done.stderr}"


def test_no_ctl_module_imports_main_and_the_import_graph_is_acyclic() -> None:
    """Only the entry points import ctl.main, and the imports between ctl modules form no cycle."""
    graph = {name: _ctl_imports(name) for name in MODULES}
    assert [n for n, deps in graph.items() if "main" in deps and n not in ENTRY_POINTS] == []
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in graph[name]:
            visit(dep, (*path, name))
        done.add(name)

    for name in MODULES:
        visit(name, ())


def test_runner_imports_no_command_group() -> None:
    """The shared plumbing depends on no command group (groups depend on it)."""
    group_names = {g.__name__.rsplit(".", 1)[1] for g in GROUPS}
    assert _ctl_imports("runner") & group_names == set()


def test_no_private_name_is_imported_into_ctl_or_its_tests() -> None:
    """No `_name` is imported across modules in ctl or from ctl in its tests."""
    tests = Path(__file__).parent
    paths = [*CTL_DIR.glob("*.py"), *tests.glob("test_ctl_*.py"), tests / "test_health_render.py"]
    assert [hit for path in paths for hit in _private_imports(path)] == []


def test_every_command_runs_a_public_function_of_its_own_group() -> None:
    """Each command's handler is (or wraps) a public function defined in a ctl group module, not a string."""
    parser = build_parser()
    group_modules = {g.__name__ for g in GROUPS}
    leaves = command_handlers(parser)
    assert len(leaves) >= 20
    for path, handler in leaves:
        fn = getattr(handler, "__wrapped__", handler)  # command() wraps async ones; completion needs no daemon
        assert inspect.isfunction(fn), f"{path}: no handler"
        assert fn.__module__ in group_modules, f"{path}: {fn.__module__}"
        assert not fn.__name__.startswith("_"), f"{path}: {fn.__name__}"
