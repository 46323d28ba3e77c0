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
        "outbox: outbound webhook deliveries, their attempts, and endpoint state",
        """
        -- The transactional outbox (issue 11): the writer that commits a shipment change inserts a
        -- row per matching [[outbound]] endpoint in the same transaction. The body is fixed at that
        -- moment (the change as it was), the message id too: both are the same on every retry.
        CREATE TABLE outbox (
            id               INTEGER PRIMARY KEY,
            message_id       TEXT NOT NULL UNIQUE,  -- webhook-id: msg_...
            endpoint         TEXT NOT NULL,         -- [[outbound]] name
            shipment_id      TEXT NOT NULL,         -- no foreign key: a shipment.removed row outlives it
            event_type       TEXT NOT NULL,
            body             TEXT NOT NULL,         -- the JSON payload, exactly as signed and sent
            created_at       TEXT NOT NULL,
            state            TEXT NOT NULL DEFAULT 'pending',  -- pending, sending, delivered, dead
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  TEXT NOT NULL,
            last_status      INTEGER,
            last_error       TEXT NOT NULL DEFAULT '',
            finished_at      TEXT
        ) STRICT;
        -- Due work is a range scan over undelivered rows; per (endpoint, shipment) order is by id.
        CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending';
        CREATE INDEX outbox_chain ON outbox (endpoint, shipment_id, id) WHERE state IN ('pending', 'sending');
        CREATE INDEX outbox_endpoint ON outbox (endpoint, created_at);
        CREATE INDEX outbox_finished ON outbox (finished_at) WHERE finished_at IS NOT NULL;

        CREATE TABLE outbox_attempts (
            id           INTEGER PRIMARY KEY,
            outbox_id    INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
            attempt      INTEGER NOT NULL,
            at           TEXT NOT NULL,
            outcome      TEXT NOT NULL,  -- delivered, failed, gone, throttled
            http_status  INTEGER,
            latency_ms   REAL NOT NULL,
            error        TEXT NOT NULL DEFAULT ''
        ) STRICT;
        CREATE INDEX outbox_attempts_row ON outbox_attempts (outbox_id);

        -- What the dispatcher learned about each endpoint; survives restarts (a 410 stays disabled).
        CREATE TABLE outbound_endpoints (
            name             TEXT PRIMARY KEY,
            disabled_at      TEXT,
            disabled_reason  TEXT NOT NULL DEFAULT '',
            failing_since    TEXT,
            last_success_at  TEXT,
            last_attempt_at  TEXT,
            last_error       TEXT NOT NULL DEFAULT ''
        ) STRICT;
        """,
    ),
    (
        6,
        "push subscriptions: subscribed_at, last push, push count per shipment",
        """
        -- Tracking pushes (issue 10): a shipment is subscribed with its provider (ShipEngine's
        -- tracking/start) once, then hears of changes by push; polling stays as the safety net.
        -- push_missed: a poll found a change no push reported, so the shipment is polled at its
        -- normal cadence until its next push arrives (sync/cadence.py push regimes).
        ALTER TABLE shipments ADD COLUMN subscribed_at TEXT;
        ALTER TABLE shipments ADD COLUMN last_push_at TEXT;
        ALTER TABLE shipments ADD COLUMN push_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE shipments ADD COLUMN push_missed INTEGER NOT NULL DEFAULT 0;
        -- A push names its parcel by tracking number (its carrier code may differ: stamps_com vs usps).
        CREATE INDEX shipments_number ON shipments (tracking_number);
        -- The subscription loop's two queues, without a scan.
        CREATE INDEX shipments_to_subscribe ON shipments (id) WHERE active = 1 AND subscribed_at IS NULL;
        CREATE INDEX shipments_to_unsubscribe ON shipments (id) WHERE active = 0 AND subscribed_at IS NOT NULL;
        CREATE INDEX shipments_subscribed ON shipments (id) WHERE active = 1 AND subscribed_at IS NOT NULL;
        CREATE INDEX shipments_last_push ON shipments (last_push_at) WHERE last_push_at IS NOT NULL;
        """,
    ),
    (
        7,
        "shipments keep their provider, its id for them, and its own status words",
        """
        -- provider: the [[providers]] entry that tracks the shipment ('' = routed by carrier at
        -- the next sync, then kept). provider_ref: that provider's id for it once registered
        -- ('' = not registered yet; 17TRACK and the tracker APIs need a registration first).
        -- provider_status / provider_sub_status: the provider's own status words, kept beside
        -- our status_code so an unknown or renamed status still says what it was.
        ALTER TABLE shipments ADD COLUMN provider TEXT NOT NULL DEFAULT '';
        ALTER TABLE shipments ADD COLUMN provider_ref TEXT NOT NULL DEFAULT '';
        ALTER TABLE shipments ADD COLUMN provider_status TEXT NOT NULL DEFAULT '';
        ALTER TABLE shipments ADD COLUMN provider_sub_status TEXT NOT NULL DEFAULT '';
        """,
    ),
    (
        8,
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
    (
        9,
        "shipments say how their carrier was known: given, detected by the provider, or set by an operator",
        """
        -- carrier_source: 'given' (named when added), 'pending' (added without one: carrier_code is
        -- '' until the provider detects it at registration), 'detected', or 'set' (an operator's
        -- override). detected_carrier: what the provider detected, kept after an override.
        ALTER TABLE shipments ADD COLUMN carrier_source TEXT NOT NULL DEFAULT 'given';
        ALTER TABLE shipments ADD COLUMN detected_carrier TEXT NOT NULL DEFAULT '';
        """,
    ),
    (
        10,
        "in-flight deliveries name the daemon sending them (outbox, alert deliveries)",
        """
        -- On a shared store a row left 'sending' goes back to pending only when the member that
        -- claimed it has stopped beating: another daemon's live send is never reset and sent twice,
        -- and a killed one's is handed on without waiting for a restart (cluster/membership.py).
        ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
        ALTER TABLE alerts ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
        """,
    ),
    (
        11,
        "a notice's outbox row keeps which of its targets already have it",
        """
        -- A [[notices]] row goes to several Apprise targets; a retry goes only to those not yet in
        -- targets_done (space-separated target keys: a hash of each service's URL, never the URL), so
        -- a person whose target took it is not told twice. Webhook rows leave it ''.
        ALTER TABLE outbox ADD COLUMN targets_done TEXT NOT NULL DEFAULT '';
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]
