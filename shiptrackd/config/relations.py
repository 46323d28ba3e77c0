"""
Checks between keys: a warning threshold past its critical one, a back-off floor above its ceiling.

Each key is valid on its own (the schema checked its type and range); these pairs only make sense
together, and getting one wrong silently disables a level (a warning that can never fire before
critical). load() runs them on the built Config, so --check-config, the start and a reload agree.
"""

from __future__ import annotations

from typing import Any

from shiptrackd.errors import ConfigError
from shiptrackd.units import format_duration

from .shapes import Config
from .values import parse_space

_WARN = "the warning threshold at most the critical one"
_BACKOFF = "the first back-off at most its ceiling"
# (table, lower field, upper field, what is expected); durations print as durations.
_PAIRS = (
    ("health", "sync_age_warning_s", "sync_age_critical_s", _WARN),
    ("health", "stale_warning", "stale_critical", _WARN),
    ("health", "error_rate_warning", "error_rate_critical", _WARN),
    ("health", "loop_failures_warning", "loop_failures_critical", _WARN),
    ("sync.cadence", "not_yet_in_system", "not_yet_in_system_max", _BACKOFF),
    ("sync.cadence", "failure_backoff", "failure_backoff_max", _BACKOFF),
)


def _table(config: Config, dotted: str) -> Any:
    obj: Any = config
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
    return obj


def _show(table: str, name: str, value: float) -> str:
    if name.endswith("_s") or table == "sync.cadence":
        return f'{table}.{name.removesuffix("_s")} = "{format_duration(value)}"'
    return f"{table}.{name} = {value:g}"


def check_store_url(url: str) -> None:
    """`[store] url`: empty, sqlite:///absolute/path, or postgresql:// without a password in it."""
    if not url:
        return
    if url.startswith("sqlite://"):
        if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
            raise ConfigError(
                f"store.url = {url[:200]!r}: expected sqlite:///absolute/path.db (three slashes, then the path)"
            )
        return
    if url.startswith(("postgresql://", "postgres://")):
        if ":" in url.split("://", 1)[1].split("@", 1)[0] and "@" in url:
            raise ConfigError(
                "store.url has a password in it: expected postgresql://user@host:port/dbname, the password in"
                " store.password_file or the systemd credential store-password"
            )
        if "password=" in url:
            raise ConfigError("store.url has a password= parameter: put the password in store.password_file")
        return
    raise ConfigError(
        f"store.url with scheme {url.split(':', 1)[0][:20]!r}: expected sqlite:///absolute/path.db"
        " or postgresql://user@host:port/dbname"
    )


def check_relations(config: Config) -> None:
    """Raise ConfigError naming both keys when a pair of settings contradicts itself."""
    check_store_url(config.store.url)
    for dotted, low_name, high_name, why in _PAIRS:
        table = _table(config, dotted)
        low, high = getattr(table, low_name, None), getattr(table, high_name, None)
        if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
            raise ConfigError(
                f"{_show(dotted, low_name, low)} is above {_show(dotted, high_name, high)}: expected {why}"
            )
    # A member forgotten before it had long been stale would vanish before its loss was alerted.
    cluster = config.cluster
    if cluster.member_forget_s < 2 * cluster.member_stale_s:
        raise ConfigError(
            f"{_show('cluster', 'member_forget_s', cluster.member_forget_s)} is below twice"
            f" {_show('cluster', 'member_stale_s', cluster.member_stale_s)}: expected a lost member"
            " forgotten only well after it went stale"
        )
    # Free space warns while there is still more of it than the critical floor.
    health = config.health
    warn_text, crit_text = getattr(health, "free_disk_warning", None), getattr(health, "free_disk_critical", None)
    if isinstance(warn_text, str) and isinstance(crit_text, str):
        (warn, warn_pct), (crit, crit_pct) = parse_space(warn_text), parse_space(crit_text)
        if warn_pct == crit_pct and warn < crit:
            raise ConfigError(
                f'health.free_disk_warning = "{warn_text}" is below health.free_disk_critical = "{crit_text}": '
                "expected the warning level of free space at least the critical one"
            )
