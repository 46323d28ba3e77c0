"""
packaging/prometheus/shiptrackd-rules.yml: the example alerting rules name only series the daemon exports.

promtool is not installed on the CI machine, so the file is parsed as YAML and each expression's
series names are checked against a real scrape of a running daemon; where promtool exists, it
checks the file too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import Running
from prometheus_client.parser import text_string_to_metric_families

RULES = Path(__file__).resolve().parents[2] / "packaging" / "prometheus" / "shiptrackd-rules.yml"
PROMETHEUS_OWN = {"up"}  # series Prometheus itself records for every target
_SERIES = re.compile(r"(?<![\w.$])((?:shiptrackd|process)_[A-Za-z0-9_]+|up)\b")


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def series_in(expr: str) -> set[str]:
    """The series an expression names (label values in quotes left out)."""
    return set(_SERIES.findall(re.sub(r'"[^"]*"', '""', expr)))


def test_rules_file_has_the_shape_prometheus_loads() -> None:
    """Every rule has an alert name, an expression, a severity of warning or critical and a summary."""
    found = rules()
    assert len(found) >= 10
    names = [rule["alert"] for rule in found]
    assert len(set(names)) == len(names)
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


@pytest.mark.anyio
async def test_every_rule_names_only_series_the_daemon_exports(running: Running) -> None:
    """Each expression names at least one exported series, and every shiptrackd_/process_ name in it exists."""
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(running.config.daemon.socket))) as http:
        text = (await http.get("http://shiptrackd/metrics")).text
    exported = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    for rule in rules():
        named = series_in(rule["expr"])
        assert named - PROMETHEUS_OWN, f"{rule['alert']} names none of our series"
        assert named - PROMETHEUS_OWN <= exported, f"{rule['alert']}: not exported: {named - exported - PROMETHEUS_OWN}"


def test_series_in_ignores_label_values_and_functions() -> None:
    """The name scan finds series, not label values, PromQL functions or numbers (a self-check of the test)."""
    expr = 'rate(shiptrackd_x_total{job="shiptrackd_y"}[5m]) > 1e9 and up{job="a"} == 0 or absent(process_z)'
    assert series_in(expr) == {"shiptrackd_x_total", "up", "process_z"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed here")
def test_promtool_accepts_the_rules() -> None:
    """`promtool check rules` passes on the file."""
    promtool = shutil.which("promtool")
    assert promtool is not None
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
