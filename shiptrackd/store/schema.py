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
    (
        2,
        "health reports, alert state, the alert outbox and log, silences",
        """
        CREATE TABLE health_reports (
            id         INTEGER PRIMARY KEY,
            at         TEXT NOT NULL,
            level      TEXT NOT NULL,
            summary    TEXT NOT NULL,
            trigger    TEXT NOT NULL DEFAULT 'schedule',
            report     TEXT NOT NULL,  -- the whole report as JSON
            evaluated  INTEGER NOT NULL DEFAULT 0  -- 1 once the alert rules have seen it
        ) STRICT;
        CREATE INDEX health_reports_at ON health_reports (at);
        CREATE INDEX health_reports_unevaluated ON health_reports (id) WHERE evaluated = 0;

        -- One row per check: where its alert stands (streaks, firing or not, last notice).
        CREATE TABLE alert_state (
            check_name        TEXT PRIMARY KEY,
            level             TEXT NOT NULL DEFAULT 'ok',
            failing_streak    INTEGER NOT NULL DEFAULT 0,
            passing_streak    INTEGER NOT NULL DEFAULT 0,
            notified_level    TEXT,  -- NULL: not firing
            fired_at          TEXT,
            last_notified_at  TEXT,
            message           TEXT NOT NULL DEFAULT '',
            value             REAL,
            updated_at        TEXT NOT NULL
        ) STRICT;

        -- The outbox and the log in one: a row per notification per channel. Written in the same
        -- transaction as alert_state, claimed by the sender with UPDATE ... WHERE claimed_at IS NULL.
        CREATE TABLE alerts (
            id               INTEGER PRIMARY KEY,
            notification_id  INTEGER NOT NULL,
            created_at       TEXT NOT NULL,
            kind             TEXT NOT NULL,  -- firing, repeat, escalated, resolved, mixed, test
            severity         TEXT NOT NULL,  -- critical, warning, resolved, info
            checks           TEXT NOT NULL,  -- JSON [{check, kind, level}]
            title            TEXT NOT NULL,
            body             TEXT NOT NULL,
            channel          TEXT NOT NULL,  -- masked URL, or "console"
            channel_key      TEXT NOT NULL,  -- which configured channel (a hash of its URL)
            status           TEXT NOT NULL DEFAULT 'pending',  -- pending, sending, sent, failed
            attempts         INTEGER NOT NULL DEFAULT 0,
            claimed_at       TEXT,
            finished_at      TEXT,
            error            TEXT NOT NULL DEFAULT ''
        ) STRICT;
        CREATE INDEX alerts_pending ON alerts (id) WHERE status = 'pending';
        CREATE INDEX alerts_notification ON alerts (notification_id);
        CREATE INDEX alerts_created ON alerts (created_at);

        CREATE TABLE silences (
            id          INTEGER PRIMARY KEY,
            check_name  TEXT NOT NULL,  -- a check name, or * for every check
            created_at  TEXT NOT NULL,
            until_at    TEXT NOT NULL,
            comment     TEXT NOT NULL DEFAULT '',
            removed_at  TEXT
        ) STRICT;
        CREATE INDEX silences_until ON silences (until_at);

        -- The health check's tiny write: proves the writer can commit.
        CREATE TABLE store_probe (
            id  INTEGER PRIMARY KEY CHECK (id = 1),
            at  TEXT NOT NULL
        ) STRICT;
        """,
    ),
    (
        3,
        "shipment_tally: shipment counts by (status, active), kept by triggers",
        """
        -- GET /v1/status, stats and the metrics read these few rows instead of counting every
        -- shipment (a full scan: ~130 ms at 1M rows, bench/README.md). The triggers keep it exact in
        -- the same transaction (savepoint rollbacks included). status_code '' stands for a
        -- shipment never synced (NULL in shipments): a provider's status is always one of
        -- models.STATUS_CODES, never ''. Rows whose count falls to 0 stay; readers skip them.
        CREATE TABLE shipment_tally (
            status_code  TEXT NOT NULL,
            active       INTEGER NOT NULL,
            n            INTEGER NOT NULL,
            PRIMARY KEY (status_code, active)
        ) STRICT;
        INSERT INTO shipment_tally (status_code, active, n)
            SELECT coalesce(status_code, ''), active, count(*) FROM shipments GROUP BY 1, 2;
        CREATE TRIGGER shipments_tally_insert AFTER INSERT ON shipments BEGIN
            INSERT INTO shipment_tally (status_code, active, n) VALUES (coalesce(NEW.status_code, ''), NEW.active, 1)
                ON CONFLICT (status_code, active) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER shipments_tally_delete AFTER DELETE ON shipments BEGIN
            UPDATE shipment_tally SET n = n - 1
             WHERE status_code = coalesce(OLD.status_code, '') AND active = OLD.active;
        END;
        CREATE TRIGGER shipments_tally_update AFTER UPDATE OF status_code, active ON shipments
            WHEN OLD.status_code IS NOT NEW.status_code OR OLD.active IS NOT NEW.active BEGIN
            UPDATE shipment_tally SET n = n - 1
             WHERE status_code = coalesce(OLD.status_code, '') AND active = OLD.active;
            INSERT INTO shipment_tally (status_code, active, n) VALUES (coalesce(NEW.status_code, ''), NEW.active, 1)
                ON CONFLICT (status_code, active) DO UPDATE SET n = n + 1;
        END;
        """,
    ),
    (
        4,
        "shipments_terminal: the retention loop finds long-terminal shipments without a scan",
        """
        -- Terminal (inactive) shipments by when they last changed: retention drops the tracking
        -- events of those terminal for longer than [store] keep_terminal, walking this index.
        CREATE INDEX shipments_terminal ON shipments (updated_at, id) WHERE active = 0;
        """,
    ),
    (
        5,
        "cluster: shipment leases, run owners, members, the shared rate budget",
        """
        -- Several daemons on one store (PostgreSQL) claim due shipments in batches: a claim sets
        -- the owner and an expiry; a result is written only while its owner still holds it, and
        -- a dead daemon's claims are free again after the expiry. One daemon on SQLite claims too.
        ALTER TABLE shipments ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
        ALTER TABLE shipments ADD COLUMN lease_until TEXT;
        CREATE INDEX shipments_leased ON shipments (lease_owner) WHERE lease_owner != '';
        ALTER TABLE sync_runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';

        -- Every daemon on the store, with a heartbeat: `status` lists them, a start marks the runs
        -- of members whose heartbeat stopped as interrupted, the cluster check judges them.
        CREATE TABLE cluster_members (
            id            TEXT PRIMARY KEY,
            host          TEXT NOT NULL,
            pid           INTEGER NOT NULL,
            version       TEXT NOT NULL,
            started_at    TEXT NOT NULL,
            heartbeat_at  TEXT NOT NULL,
            roles         TEXT NOT NULL DEFAULT '',  -- comma-separated singletons it leads
            leases        INTEGER NOT NULL DEFAULT 0
        ) STRICT;

        -- The provider account's rate limit as one token bucket for every daemon (seconds are
        -- the database server's clock, so daemons' clocks need not agree).
        CREATE TABLE rate_budget (
            account       TEXT PRIMARY KEY,
            tokens        REAL NOT NULL,
            refilled_at   REAL NOT NULL,
            paused_until  REAL NOT NULL DEFAULT 0
        ) STRICT;
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]
