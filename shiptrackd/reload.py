"""
What a configuration reload changes: the loops' schedules, which sections differ, and which keys
only take effect after a restart. Pure functions of two configurations; daemon.py applies them.
"""

from __future__ import annotations

from .config import Config, Schedule, format_duration

SECTIONS = (
    "daemon",
    "provider",
    "sync",
    "health",
    "alerts",
    "cluster",
    "api",
    "outbound_dispatch",
    "outbound",
    "webhooks",
)


def heartbeat_schedule(config: Config) -> Schedule:
    interval = config.alerts.heartbeat_interval_s
    return Schedule(format_duration(interval), interval_s=interval)


def loop_schedules(config: Config) -> dict[str, Schedule]:
    """Each configured loop's schedule by loop name (the heartbeat's only when a heartbeat URL is set)."""
    schedules = {"sync": config.sync.schedule, "force": config.sync.force_schedule}
    schedules |= {"health": config.health.schedule, "alerts": config.health.schedule}
    schedules["retention"] = config.store.retention_schedule
    if config.alerts.heartbeat_url:  # its own loop: a slow ping service never delays another loop
        schedules["heartbeat"] = heartbeat_schedule(config)
    return schedules


def config_changes(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """Which sections changed, and which changed keys need a restart to apply."""
    changed = [s for s in SECTIONS if getattr(old, s) != getattr(new, s)]
    needs_restart = [
        f"daemon.{key}"
        for key in ("state_dir", "socket", "socket_mode", "metrics_listen")
        if getattr(old.daemon, key) != getattr(new.daemon, key)
    ]
    if old.api.listen != new.api.listen:
        needs_restart.append("api.listen")
    if old.outbound_dispatch.concurrency != new.outbound_dispatch.concurrency:
        needs_restart.append("outbound_dispatch.concurrency")  # the pool is sized at start
    needs_restart += [
        f"webhooks.{key}" for key in ("listen", "jwks_url") if getattr(old.webhooks, key) != getattr(new.webhooks, key)
    ]
    if bool(old.alerts.heartbeat_url) != bool(new.alerts.heartbeat_url):
        needs_restart.append("alerts.heartbeat_url")  # the heartbeat loop exists or not from the start
    if old.providers != new.providers:
        changed.append("providers")
        needs_restart.append("providers")  # only the default account is swapped in place
    return changed, needs_restart
