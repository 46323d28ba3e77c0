"""
The store contract on both backends: runs, loop state, health reports and the store's own checks,
silences; and what only a server store has (migrations under a lock, a newer schema refused,
the password kept out of every log line). test_store, test_retention and test_alerts_delivery
run their store tests on both backends too, through the `any_store` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pg_fixtures import PgServer

from shiptrackd.errors import StoreError
from shiptrackd.models import NewShipment
from shiptrackd.store import RunCounts, Store
from shiptrackd.store.rows import LoopState
from shiptrackd.store.schema import LATEST_VERSION, MIGRATIONS
from shiptrackd.store.schema_pg import PG_MIGRATIONS, translate_ddl

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def test_runs_errors_and_loop_state(any_store: Store) -> None:
    """A run's counters, its errors by kind, the last successful run and the loops' remembered state."""
    store = any_store
    first = await store.runs.start("schedule", NOW)
    second = await store.runs.start("force", NOW + timedelta(minutes=1))
    assert second > first
    await store.runs.finish(first, RunCounts(selected=5, updated=3, failed=2, api_calls=7), "partial", "", NOW)
    await store.runs.add_error(second, "unauthorized", "401 from the API", NOW, http_status=401)
    await store.runs.finish(second, RunCounts(), "failed", "bad key", NOW)
    last = await store.runs.last_successful()
    assert last is not None and last.id == first and last.finished_at == NOW
    assert [r.id for r in await store.runs.recent(5)] == [second, first]
    totals = await store.runs.totals_since(NOW - timedelta(hours=1))
    assert (totals.runs, totals.selected, totals.api_calls, totals.failed) == (2, 5, 7, 2)
    assert await store.runs.errors_by_kind(NOW - timedelta(hours=1)) == {"unauthorized": 1}
    await store.runs.save_loop("sync", NOW, "ok", False)
    await store.runs.save_loop("sync", NOW + timedelta(minutes=5), "failed", True)
    await store.runs.save_loop("force", None, "", False)
    states = await store.runs.loop_states()
    assert states["sync"] == LoopState(last_run_at=NOW + timedelta(minutes=5), last_outcome="failed", paused=True)
    assert states["force"].last_run_at is None
    assert sorted(await store.health.run_counts()) == [("force", "failed", 1), ("schedule", "partial", 1)]


async def test_health_reports_probe_and_stale_shipments(any_store: Store) -> None:
    """Reports come back newest first and unevaluated in order; the probe commits; stale ones are counted."""
    store = any_store
    ids = []
    for minute in range(3):
        report = {"at": (NOW + timedelta(minutes=minute)).isoformat(), "level": "ok", "summary": f"r{minute}"}
        ids.append((await store.health.save_report(report, "schedule", evaluated=minute == 0)).id)
    assert ids == sorted(ids)
    latest = await store.health.latest()
    assert latest is not None and latest.id == ids[-1] and latest.summary == "r2"
    assert latest.at == NOW + timedelta(minutes=2) and latest.report["id"] == ids[-1]
    assert [r.id for r in await store.health.unevaluated()] == ids[1:]
    assert await store.health.probe_write(NOW) >= 0
    assert await store.health.quick_check() == "ok"
    await store.shipments.add_many([NewShipment("ups", f"1Z{i}") for i in range(4)], NOW - timedelta(days=3))
    stale, active, top = await store.health.stale(NOW - timedelta(days=1), 2)
    assert (stale, active, len(top)) == (4, 4, 2)
    assert (await store.health.stale(NOW - timedelta(days=5), 2))[0] == 0


async def test_silences_come_and_go(any_store: Store) -> None:
    """A silence is listed until it expires or is removed; removing twice says so."""
    store = any_store
    silence = await store.alerts.add_silence("stale_shipments", NOW + timedelta(hours=2), "deploy", NOW)
    other = await store.alerts.add_silence("*", NOW + timedelta(minutes=10), "", NOW)
    assert silence.until_at == NOW + timedelta(hours=2) and silence.created_at == NOW and silence.removed_at is None
    assert [s.id for s in await store.alerts.silences(NOW)] == [other.id, silence.id]
    assert [s.id for s in await store.alerts.silences(NOW + timedelta(hours=1))] == [silence.id]
    assert await store.alerts.remove_silence(silence.id, NOW)
    assert not await store.alerts.remove_silence(silence.id, NOW)
    assert [s.id for s in await store.alerts.silences(NOW)] == [other.id]
    (removed,) = [s for s in await store.alerts.silences(NOW, include_expired=True) if s.id == silence.id]
    assert removed.removed_at == NOW


def test_every_migration_has_a_postgresql_form() -> None:
    """Each SQLite migration has a PostgreSQL text by the same version (translated or written out)."""
    assert [v for v, _, _ in PG_MIGRATIONS] == [v for v, _, _ in MIGRATIONS]
    with pytest.raises(ValueError, match="PG_OVERRIDES"):
        translate_ddl(99, "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END;")
    assert 'TEXT COLLATE "C"' in translate_ddl(98, "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT) STRICT;")


async def test_postgresql_migrates_once_and_refuses_a_newer_schema(pg_server: PgServer) -> None:
    """A new database gets every version; two opens apply nothing twice; a newer schema is refused."""
    url = pg_server.create("newer")
    first = await Store.open(url)
    second = await Store.open(url)  # concurrent daemons: the migration lock makes the second wait, then skip
    try:
        versions = [r[0] for r in await first.db.fetchall("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == list(range(1, LATEST_VERSION + 1))
        assert await second.db.schema_version() == LATEST_VERSION
        await first.db.write(lambda conn: conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2030')"))
    finally:
        await first.close()
        await second.close()
    with pytest.raises(StoreError, match="newer than this shiptrackd"):
        await Store.open(url)


async def test_postgresql_password_comes_from_a_file_and_is_never_logged(
    pg_server: PgServer, tmp_path: Path, logs: list[str]
) -> None:
    """A wrong password is an error naming the server, never the password; the URL shown has none."""
    from shiptrackd.config import ConfigError, load

    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret-Passw0rd\n")
    secret_file.chmod(0o600)
    config = load(
        None,
        env={
            "SHIPTRACK_DAEMON__STATE_DIR": str(tmp_path),
            "SHIPTRACK_STORE__URL": "postgresql://nobody_here@127.0.0.1:5432/postgres",
            "SHIPTRACK_STORE__PASSWORD_FILE": str(secret_file),
        },
    )
    assert config.store.password.get() == "s3cret-Passw0rd"
    with pytest.raises(StoreError) as caught:
        await Store.open(config.store.url, password=config.store.password.get())
    assert "127.0.0.1:5432" in str(caught.value) and "s3cret" not in str(caught.value)
    assert not any("s3cret" in line for line in logs)
    with pytest.raises(ConfigError, match="password in it"):
        load(None, env={"SHIPTRACK_DAEMON__STATE_DIR": str(tmp_path), "SHIPTRACK_STORE__URL": "postgresql://u:pw@h/d"})
    with pytest.raises(ConfigError, match="sqlite:///absolute"):
        load(None, env={"SHIPTRACK_DAEMON__STATE_DIR": str(tmp_path), "SHIPTRACK_STORE__URL": "mysql://h/d"})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_shiptrackctl_store_migrate(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`shiptrackctl store migrate` opens the configured store, migrates it and says which version it is at."""
    import json

    from shiptrackd.ctl.main import main

    monkeypatch.setenv("SHIPTRACK_DAEMON__STATE_DIR", str(tmp_path / "state"))
    if backend == "postgresql":
        url = request.getfixturevalue("pg_server").create("ctl")
        monkeypatch.setenv("SHIPTRACK_STORE__URL", url)
    else:
        monkeypatch.setenv("SHIPTRACK_STORE__URL", f"sqlite://{tmp_path / 'elsewhere.db'}")
    assert main(["store", "migrate", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backend"] == backend and doc["version"] == doc["latest"] == LATEST_VERSION
    if backend == "sqlite":
        assert (tmp_path / "elsewhere.db").exists() and not (tmp_path / "state" / "shiptrackd.db").exists()
    monkeypatch.setenv("SHIPTRACK_STORE__URL", "postgresql://u:pw@h/d")
    assert main(["store", "migrate"]) == 78
    assert "password in it" in capsys.readouterr().err
