"""
The single copy of the control API's vocabulary: shipment status codes and names, health levels and
check names, event type names and exit codes. The daemon, `shiptrackctl` and the console import them
from here; a second copy anywhere is a bug (`duplicates` looks for them).

Stdlib only and no imports at all: `shiptrackctl --help` loads this (bench/bench_cli.py).
"""

from __future__ import annotations

# --- shipments ----------------------------------------------------------------------------
# ShipEngine's status codes; logic keys on these, never on descriptions.
STATUS_CODES = ("UN", "NY", "AC", "IT", "AT", "EX", "SP", "DE")
STATUS_NAMES = {
    "UN": "unknown",
    "NY": "not yet in system",
    "AC": "accepted",
    "IT": "in transit",
    "AT": "delivery attempt",
    "EX": "exception",
    "SP": "at pickup point",
    "DE": "delivered",
}
NO_STATUS = "none"  # the ?status= filter for shipments never synced yet

# --- loops ---------------------------------------------------------------------------------
LOOP_ACTIONS = ("pause", "resume", "trigger")  # POST /v1/loops/{name}/{action}

# --- health -------------------------------------------------------------------------------
OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
LEVELS = (OK, WARNING, CRITICAL, UNKNOWN)
# `shiptrackctl health` and the metric shiptrackd_health_level: the monitoring-plugin convention.
LEVEL_EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}
CHECKS = ("api_connectivity", "recent_sync", "stale_shipments", "error_rate", "loops", "store", "deliveries")
# Checks a daemon runs only while their feature is on: `webhooks` with [webhooks] listen (issue 10),
# `cluster` on a PostgreSQL store, where several daemons share the work (issue 13).
OPTIONAL_CHECKS = ("webhooks", "cluster")
KNOWN_CHECKS = CHECKS + OPTIONAL_CHECKS

# --- events on /v1/events -----------------------------------------------------------------
EVENT_HEARTBEAT = "heartbeat"
EVENT_GAP = "gap"
EVENT_LOOP_CHANGED = "loop.changed"
EVENT_SHIPMENTS_ADDED = "shipments.added"
EVENT_SHIPMENTS_REMOVED = "shipments.removed"
EVENT_SHIPMENT_STATUS_CHANGED = "shipment.status_changed"
EVENT_SYNC_STARTED = "sync.started"
EVENT_SYNC_PROGRESS = "sync.progress"
EVENT_SYNC_FINISHED = "sync.finished"
EVENT_PROVIDER_AUTH_FAILED = "provider.auth_failed"
EVENT_CONFIG_RELOADED = "config.reloaded"
EVENT_HEALTH_REPORT = "health.report"
EVENT_ALERT_QUEUED = "alert.queued"
EVENT_ALERT_DELIVERY = "alert.delivery"
EVENT_SILENCE_ADDED = "silence.added"
EVENT_SILENCE_REMOVED = "silence.removed"

# --- exit codes ---------------------------------------------------------------------------
# shiptrackctl: 0 success, 1 the operation failed, 2 usage, 69 daemon unreachable (sysexits
# EX_UNAVAILABLE), 75 a wait timed out while the work goes on (EX_TEMPFAIL), 130 interrupted.
# shiptrackd: 0 clean stop, 1 anything else, 78 bad configuration (EX_CONFIG: systemd's
# RestartPreventExitStatus=78). `shiptrackctl health` uses LEVEL_EXIT_CODES instead.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_TEMPFAIL = 75
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130
