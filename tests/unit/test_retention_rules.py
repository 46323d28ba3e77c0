"""What retention calls old enough: a pure function of now and [store], and the keys' ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shiptrackd.config import StoreConfig, load
from shiptrackd.errors import ConfigError
from shiptrackd.store.retention import cutoffs

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0


@pytest.mark.parametrize(
    ("config", "expected_days"),
    [
        # runs, errors, health, alerts, terminal (days before NOW)
        (StoreConfig(), (90, 30, 7, 30, 90)),
        (StoreConfig(keep_runs=10 * DAY, keep_errors=30 * DAY), (10, 10, 7, 30, 90)),  # errors go with their runs
        (StoreConfig(keep_health=1 * DAY, keep_alerts=365 * DAY, keep_terminal=2 * DAY), (90, 30, 1, 365, 2)),
    ],
)
def test_cutoffs_follow_the_configured_ages(config: StoreConfig, expected_days: tuple[int, ...]) -> None:
    """Each cutoff is now minus its age; sync errors are never kept longer than keep_runs."""
    cut = cutoffs(NOW, config)
    got = (cut.runs_before, cut.errors_before, cut.health_before, cut.alerts_before, cut.terminal_before)
    assert got == tuple(NOW - timedelta(days=d) for d in expected_days)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('keep_runs = "12h"', 'store.keep_runs = "12h"'),
        ('keep_terminal = "99999999999d"', "store.keep_terminal"),
        ("keep_errors = 0", "store.keep_errors = 0"),
        ('retention_schedule = "soon"', "store.retention_schedule"),
    ],
)
def test_out_of_range_ages_are_refused_with_the_range(tmp_path: Path, line: str, expected: str) -> None:
    """An age outside 1d..3650d (or a bad schedule) is a ConfigError naming the key and, for ages, the range."""
    path = tmp_path / "c.toml"
    path.write_text(f"[store]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert expected in caught.value.message
    if "keep_" in line:
        assert "from 1d to 3650d" in caught.value.message


def test_the_old_keys_still_set_the_ages_until_the_new_ones_are_given(tmp_path: Path) -> None:
    """[health] keep_reports and [alerts] keep_log feed [store] keep_health/keep_alerts; the new keys win."""
    path = tmp_path / "c.toml"
    path.write_text('[health]\nkeep_reports = "3d"\n[alerts]\nkeep_log = "60d"\n[store]\nkeep_alerts = "10d"\n')
    store = load(path, env={}).store
    assert (store.keep_health, store.keep_alerts) == (3 * DAY, 10 * DAY)
