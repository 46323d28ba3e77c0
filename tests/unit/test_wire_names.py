"""The control API's vocabulary is written once, in shiptrackd/wire/names.py."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from shiptrackd.wire import names

PACKAGE = Path(names.__file__).parents[1]


def literals(path: Path) -> set[str]:
    nodes = ast.walk(ast.parse(path.read_text()))
    return {n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_no_second_copy_of_status_names_check_names_or_exit_codes() -> None:
    """No module but names.py spells a status name, the check-name tuple or an exit-code table."""
    copies = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(names.__file__):
            continue
        source = path.read_text()
        tree = ast.parse(source)
        found = literals(path)
        if "not yet in system" in found or "delivery attempt" in found:
            copies.append(f"{path}: status names")
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple) and {getattr(e, "value", None) for e in node.elts} >= set(names.CHECKS):
                copies.append(f"{path}:{node.lineno}: check names")
            if isinstance(node, ast.Dict) and {getattr(k, "value", None) for k in node.keys} >= set(names.LEVELS):
                copies.append(f"{path}:{node.lineno}: level table")
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.startswith("EXIT_") for t in node.targets
            ):
                if isinstance(node.value, ast.Constant | ast.Tuple):
                    copies.append(f"{path}:{node.lineno}: exit code")
    assert copies == []


def test_names_import_nothing() -> None:
    """names.py loads no module of its own, so `shiptrackctl --help` can import it for free."""
    code = (
        "import sys; before = set(sys.modules); import shiptrackd.wire.names;"
        " print(sorted(m for m in set(sys.modules) - before if m.startswith('shiptrackd')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['shiptrackd', 'shiptrackd.wire', 'shiptrackd.wire.names']"


def test_level_exit_codes_follow_the_monitoring_plugin_convention() -> None:
    """ok 0, warning 1, critical 2, unknown 3: what Nagios and kin read."""
    assert [names.LEVEL_EXIT_CODES[level] for level in names.LEVELS] == [0, 1, 2, 3]
