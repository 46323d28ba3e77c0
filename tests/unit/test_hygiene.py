"""House rules a reviewer would otherwise check by hand: no private name (one leading underscore) is
imported from another module — a name another module needs is public; only the store reads database
times; no module grows past 500 lines."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shiptrackd", "tui")


def _modules(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts)


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [part for a in node.names for part in a.name.split(".")]
        else:
            continue
        for name in names:
            if name.startswith("_") and not name.startswith("__"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    return found


def test_no_private_name_is_imported_across_modules() -> None:
    offenders = [line for path in _modules(*PACKAGES, "tests", "bench") for line in _private_imports(path)]
    assert offenders == []


# Parsers of wire formats (provider answers, pushes, the sandbox's scans, the units grammar, events another
# daemon sent over NOTIFY) may call fromisoformat; a database time is parsed only in store/ (store/rows.py).
WIRE_PARSERS = (
    "shiptrackd/providers/",
    "shiptrackd/sandbox/",
    "shiptrackd/units.py",
    "shiptrackd/push/verify.py",
    "shiptrackd/cluster/events.py",
)
DB_TIME_NAMES = ("from_db", "at_db")


def _db_time_readers(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if node.module and node.module.split(".")[-1] == "db" and "store" in node.module.split("."):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports the store's database module")
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n in DB_TIME_NAMES]
        elif isinstance(node, ast.Attribute) and node.attr in ("fromisoformat", "strptime"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} parses a time ({node.attr})")
    return found


def test_only_the_store_reads_database_times() -> None:
    """Store rows come back typed, with datetimes: no module outside store/ parses a database time."""
    offenders = []
    for path in _modules(*PACKAGES):
        rel = str(path.relative_to(ROOT))
        if rel.startswith(("shiptrackd/store/", *WIRE_PARSERS)):
            continue
        offenders += _db_time_readers(path)
    assert offenders == []


MAX_MODULE_LINES = 500  # past this a module holds more than one responsibility (issue "One contract, one house")


def test_no_module_is_over_500_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in _modules(*PACKAGES)}
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
