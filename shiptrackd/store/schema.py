"""
Versioned migrations. Each entry runs once, in order, inside one transaction, and
is recorded in `schema_migrations`; a file newer than the code is refused.

Times are ISO-8601 UTC text of one fixed width (`2026-01-05T09:00:00.000000Z`),
so they sort and compare as strings and stay readable in the sqlite3 shell.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "shipments, events, runs, errors, loop state",
        """
        CREATE TABLE shipments (
            id                     TEXT PRIMARY KEY,
            carrier_code           TEXT NOT NULL,
            tracking_number        TEXT NOT NULL,
            reference              TEXT NOT NULL DEFAULT '',
            status_code            TEXT,
            status_detail_code     TEXT NOT NULL DEFAULT '',
            status_description     TEXT NOT NULL DEFAULT '',
            exception_description  TEXT NOT NULL DEFAULT '',
            estimated_delivery_at  TEXT,
            actual_delivery_at     TEXT,
            last_synced_at         TEXT,
            status_changed_at      TEXT,
            next_sync_at           TEXT,
            schedule_reason        TEXT NOT NULL DEFAULT 'new',
            consecutive_failures   INTEGER NOT NULL DEFAULT 0,
            last_error             TEXT NOT NULL DEFAULT '',
            last_error_kind        TEXT NOT NULL DEFAULT '',
            active                 INTEGER NOT NULL DEFAULT 1,
            created_at             TEXT NOT NULL,
            updated_at             TEXT NOT NULL,
            UNIQUE (carrier_code, tracking_number)
        ) STRICT;
        -- "What is due now" is a range scan over active rows only.
        CREATE INDEX shipments_due ON shipments (next_sync_at) WHERE active = 1;
        CREATE INDEX shipments_status ON shipments (status_code, carrier_code);
        CREATE INDEX shipments_stale ON shipments (last_synced_at) WHERE active = 1;

        CREATE TABLE tracking_events (
            id                   INTEGER PRIMARY KEY,
            shipment_id          TEXT NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
            occurred_at          TEXT NOT NULL,
            status_code          TEXT NOT NULL DEFAULT '',
            description          TEXT NOT NULL DEFAULT '',
            event_code           TEXT NOT NULL DEFAULT '',
            location             TEXT NOT NULL DEFAULT '',
            dedup_key            TEXT NOT NULL,
            UNIQUE (shipment_id, dedup_key)
        ) STRICT;

        CREATE TABLE sync_runs (
            id            INTEGER PRIMARY KEY,
            trigger       TEXT NOT NULL,
            started_at    TEXT NOT NULL,
            finished_at   TEXT,
            selected      INTEGER NOT NULL DEFAULT 0,
            updated       INTEGER NOT NULL DEFAULT 0,
            unchanged     INTEGER NOT NULL DEFAULT 0,
            failed        INTEGER NOT NULL DEFAULT 0,
            skipped       INTEGER NOT NULL DEFAULT 0,
            api_calls     INTEGER NOT NULL DEFAULT 0,
            retries       INTEGER NOT NULL DEFAULT 0,
            rate_limited  INTEGER NOT NULL DEFAULT 0,
            outcome       TEXT NOT NULL DEFAULT 'running',
            stop_reason   TEXT NOT NULL DEFAULT ''
        ) STRICT;
        CREATE INDEX sync_runs_started ON sync_runs (started_at);

        CREATE TABLE sync_errors (
            id           INTEGER PRIMARY KEY,
            run_id       INTEGER REFERENCES sync_runs (id) ON DELETE CASCADE,
            shipment_id  TEXT,
            occurred_at  TEXT NOT NULL,
            kind         TEXT NOT NULL,
            message      TEXT NOT NULL,
            http_status  INTEGER
        ) STRICT;
        CREATE INDEX sync_errors_time ON sync_errors (occurred_at);
        CREATE INDEX sync_errors_run ON sync_errors (run_id);

        CREATE TABLE loop_state (
            name          TEXT PRIMARY KEY,
            last_run_at   TEXT,
            last_outcome  TEXT NOT NULL DEFAULT '',
            paused        INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]
