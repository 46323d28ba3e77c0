"""
Configuration: defaults < TOML file < systemd credentials < seed aliases < SHIPTRACK_* environment.

Loading produces a frozen Config or raises ConfigError naming the key, the value and what was
expected; the daemon turns that into exit code 78. The loader is driven by the dataclasses in
`shapes`: it walks their fields and type hints, so a new field with a default is a valid, typed key at once.

Conventions the walk applies:
- a nested dataclass is a sub-table (`[sync.cadence]`, env `SHIPTRACK_SYNC__CADENCE__IN_TRANSIT`);
- a field ending in `_s`, or declared with `duration_field()`, is a duration ("90s", "1h30m", "14d",
  "250ms", or a bare number of seconds) and its key drops the suffix (`timeout_s` <-> `timeout`);
- a `Secret` (or tuple of them) field `x` also accepts `x_file`: a file holding the value;
- `ranged(default, low, high)` bounds a number or duration (every number has a ceiling, named in
  the error); `field(metadata={"key": False})` hides a field.

Where things live (import from `shiptrackd.config`, not from the modules):
- shapes   Secret, RateLimit, Schedule, the section dataclasses and Config, duration_field, LOG_LEVELS;
- values   one value as text: schedules and next_fire, free space, alert URL tags, mask_url
           (durations, rates and sizes are shiptrackd.units, re-exported here);
- relations checks between keys (warning <= critical, back-off floor <= ceiling);
- schema   the key schema derived from `shapes`, SHIPTRACK_* names, one raw value -> typed value;
- sources  the layers: TOML table walk, SHIPTRACK_* env, seed aliases, systemd credentials; merge/build;
- loader   default paths, the demo settings, reading the file, load() and render().

Importing this package loads only the stdlib and cronsim: the CLI imports it on every start.
"""

from __future__ import annotations

from pathlib import Path

from shiptrackd.errors import ConfigError
from shiptrackd.paths import default_state_dir
from shiptrackd.units import (
    DURATION_HINT,
    RATE_HINT,
    format_duration,
    format_rate_limit,
    parse_duration,
    parse_rate_limit,
)

from .accounts import accounts, routes
from .endpoints import decode_whsec
from .loader import (
    DEMO_SETTINGS,
    DEMO_STATE_DIR,
    default_config_path,
    load,
    render,
)
from .schema import ENV_PREFIX, NON_CONFIG_ENV
from .schema import SPEC_CACHE as SPEC_CACHE  # test_config.py patches the schema cache
from .schema import all_keys as all_keys  # test_config.py walks the keys
from .schema import key_specs as key_specs  # test_config.py builds a stand-in schema
from .shapes import (
    LOG_LEVELS,
    OUTBOUND_EVENTS,
    TOKEN_SCOPES,
    AlertsConfig,
    ApiConfig,
    ApiToken,
    CadenceConfig,
    ClusterConfig,
    Config,
    DaemonConfig,
    HealthConfig,
    Notice,
    OutboundConfig,
    OutboundEndpoint,
    ProviderConfig,
    RateLimit,
    Schedule,
    Secret,
    StoreConfig,
    SyncConfig,
    WebhooksConfig,
    duration_field,
)
from .sources import CREDENTIAL_API_KEY, CREDENTIAL_APPRISE_URLS, CREDENTIAL_STORE_PASSWORD, SEED_ALIASES
from .values import (
    ALERT_TAGS,
    SCHEDULE_HINT,
    SPACE_HINT,
    mask_url,
    next_fire,
    parse_schedule,
    parse_space,
    split_alert_url,
)

# Defined here, not in `loader`, so there is one name to patch: default_config_path() reads it
# through this package at call time, and tests point it at a missing file with
# monkeypatch.setattr("shiptrackd.config.SYSTEM_CONFIG_PATH", ...).
SYSTEM_CONFIG_PATH = Path("/etc/shiptrackd/shiptrackd.toml")

__all__ = [
    "accounts",
    "routes",
    "ALERT_TAGS",
    "CREDENTIAL_API_KEY",
    "CREDENTIAL_APPRISE_URLS",
    "CREDENTIAL_STORE_PASSWORD",
    "DEMO_SETTINGS",
    "DEMO_STATE_DIR",
    "DURATION_HINT",
    "ENV_PREFIX",
    "LOG_LEVELS",
    "OUTBOUND_EVENTS",
    "TOKEN_SCOPES",
    "NON_CONFIG_ENV",
    "RATE_HINT",
    "SCHEDULE_HINT",
    "SEED_ALIASES",
    "SPACE_HINT",
    "SYSTEM_CONFIG_PATH",
    "AlertsConfig",
    "ApiConfig",
    "ApiToken",
    "CadenceConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "HealthConfig",
    "Notice",
    "OutboundConfig",
    "OutboundEndpoint",
    "ProviderConfig",
    "RateLimit",
    "Schedule",
    "Secret",
    "StoreConfig",
    "SyncConfig",
    "WebhooksConfig",
    "default_config_path",
    "decode_whsec",
    "default_state_dir",
    "duration_field",
    "format_duration",
    "format_rate_limit",
    "load",
    "mask_url",
    "next_fire",
    "parse_duration",
    "parse_rate_limit",
    "parse_schedule",
    "parse_space",
    "render",
    "split_alert_url",
]
