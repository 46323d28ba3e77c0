"""
Loading and rendering: default locations, reading the TOML file, load() and render().

load() is the one place that knows the precedence (defaults < file < credentials < seed aliases <
SHIPTRACK_* environment), where files are looked for, what the demo overrides and the AF_UNIX path
limit; everything it layers comes from `sources`. render() is its inverse for `--check-config`:
TOML that load() reads back to the same settings, secrets masked.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shiptrackd.errors import ConfigError
from shiptrackd.paths import absolute, default_state_dir, user_socket
from shiptrackd.units import format_duration, format_rate_limit

from .accounts import with_entries
from .endpoints import check_leaving
from .files import FileRefusedError, read_regular_file
from .relations import check_relations
from .schema import KeySpec, key_specs, show_value
from .shapes import AlertsConfig, Config, RateLimit, Schedule, Secret
from .sources import alias_layer, build_config, credentials_layer, env_layer, merge_layers, set_dotted, walk_table
from .values import mask_url

# --- defaults, files, load() --------------------------------------------------------------------


def default_config_path(env: Mapping[str, str]) -> Path | None:
    """The first existing of $XDG_CONFIG_HOME (or ~/.config)/shiptrackd/shiptrackd.toml and /etc's."""
    config_home = absolute(env.get("XDG_CONFIG_HOME", ""))
    if config_home is None and (home := absolute(env.get("HOME", ""))):
        config_home = home / ".config"
    candidates = [config_home / "shiptrackd" / "shiptrackd.toml"] if config_home else []
    # Read through the package at call time: tests patch shiptrackd.config.SYSTEM_CONFIG_PATH.
    from shiptrackd import config as _pkg

    for path in [*candidates, _pkg.SYSTEM_CONFIG_PATH]:
        if path.is_file():
            return path
    return None


CONFIG_FILE_MAX_BYTES = 1024 * 1024  # config.example.toml, every key documented, is under 8 KiB


def _read_toml(path: Path, how: str) -> dict[str, Any]:
    try:
        return tomllib.loads(read_regular_file(path, CONFIG_FILE_MAX_BYTES, "a config file").decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} ({how}) does not exist: expected a readable TOML file") from None
    except FileRefusedError as exc:
        raise ConfigError(f"config file {path} ({how}) {exc}: expected a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} ({how}) cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


# The zero-setup demo: short schedules and cadence so statuses visibly change within a minute.
# Written as config text so it goes through the same checks; add a line here for a new slow key.
DEMO_SETTINGS: dict[str, Any] = {
    "provider": {"api_key": "sandbox-demo-key"},
    "sync": {
        "schedule": "10s",
        "force_schedule": "0 2 * * *",
        "cadence": {
            "accepted": "30s",
            "in_transit": "20s",
            "out_for_delivery": "10s",
            "delivery_attempt": "30s",
            "exception": "30s",
            "pickup": "30s",
            "unknown": "30s",
            "not_yet_in_system": "15s",
            "not_yet_in_system_max": "2m",
            "expire_after": "30m",
            "delivered_confirm": "1m",
            "failure_backoff": "10s",
            "failure_backoff_max": "2m",
            "push_safety": "2m",
            "silence_after": "1m",
            "silence_critical_after": "5m",
        },
    },
    "health": {"schedule": "15s"},
    "alerts": {"repeat_interval": "5m"},
}
DEMO_STATE_DIR = Path(".shiptrackd-demo")
# Keys that moved to [store]: (table, field) -> the [store] field that now holds the value.
_RENAMED = {("health", "keep_reports_s"): "keep_health", ("alerts", "keep_log_s"): "keep_alerts"}
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the terminating NUL


def load(path: Path | None = None, env: Mapping[str, str] | None = None, *, demo: bool = False) -> Config:
    """The effective Config: defaults < file < credentials < seed aliases < SHIPTRACK_* env.

    Args:
        path: the TOML file; None means $SHIPTRACK_CONFIG, else the first default location that
            exists (none is fine). A path that was named but does not exist is an error.
        env: the environment to read (default os.environ).
        demo: start from the demo settings (state in ./.shiptrackd-demo, short schedules; no file
            search, credentials or seed aliases; base_url "" for the caller to fill).

    Raises:
        ConfigError: one line naming the key, the value (secrets masked) and what was expected.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    source = None
    extra_urls: list[str] = []
    if demo:
        state_dir = Path.cwd() / DEMO_STATE_DIR
        socket = state_dir / "control.sock"
        if len(os.fsencode(socket)) > _MAX_SOCKET_PATH:
            socket = DEMO_STATE_DIR / "control.sock"  # deep cwd: a relative path still binds
        values = {"daemon": {"state_dir": state_dir, "socket": socket}}
        merge_layers(values, walk_table(Config, DEMO_SETTINGS, "", "in the demo settings", None))
        set_dotted(values, ["provider", "base_url"], "")
    else:
        values = {"daemon": {"state_dir": default_state_dir(env)}}
    if path is not None:
        source, how = Path(path), "given on the command line"
    elif not demo and env.get("SHIPTRACK_CONFIG"):
        source, how = Path(env["SHIPTRACK_CONFIG"]), "named by SHIPTRACK_CONFIG"
    elif not demo:
        source, how = default_config_path(env), "default location"
    if source is not None:
        source = Path(os.path.abspath(source.expanduser()))
        table = _read_toml(source, how)
        accounts_table = {"providers": table.pop("providers")} if "providers" in table else {}
        merge_layers(values, walk_table(Config, table, "", f"in {source}", source.parent))
    if not demo:
        creds, cred_urls = credentials_layer(env)
        aliases, alias_urls = alias_layer(env)
        merge_layers(values, creds)
        merge_layers(values, aliases)
        extra_urls = cred_urls + alias_urls
    merge_layers(values, env_layer(env))

    for (old_table, old_field), new_field in _RENAMED.items():  # an old key still works until the new one is set
        if old_field in values.get(old_table, {}):
            values.setdefault("store", {}).setdefault(new_field, values[old_table][old_field])
    daemon = values["daemon"]
    daemon.setdefault("socket", user_socket(env, daemon["state_dir"]))
    if len(os.fsencode(daemon["socket"])) > _MAX_SOCKET_PATH:
        raise ConfigError(
            f"daemon.socket = {show_value(str(daemon['socket']))}: expected a path of at most "
            f"{_MAX_SOCKET_PATH} bytes (AF_UNIX limit); choose a shorter one"
        )
    if extra_urls:
        base = values.setdefault("alerts", {}).get("urls", AlertsConfig().urls)
        merged = [*base, *(Secret(u) for u in extra_urls)]
        values["alerts"]["urls"] = tuple(dict.fromkeys(merged))  # drop repeats, keep order
    config: Config = build_config(Config, values)
    if source is not None:
        config = with_entries(config, accounts_table, f"in {source}", source.parent)
    check_relations(config)
    check_leaving(config)
    return dataclasses.replace(config, source=source)


# --- render() -----------------------------------------------------------------------------------


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any, spec: KeySpec, dotted: str) -> str:
    """One value as TOML text that load() reads back to the same thing (secrets masked)."""
    if value is None:
        return '"none"'
    if dotted == "daemon.socket_mode":
        return _toml_str(f"{value:04o}")
    if isinstance(value, Secret):
        if spec.recipients and value.get().lower().startswith("tag:"):
            return _toml_str(value.get())  # a notice's Apprise tag names channels, it opens nothing
        return _toml_str(mask_url(value.get()) if "://" in value.get() else str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if spec.duration and isinstance(value, int | float):
        return _toml_str(format_duration(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Schedule):
        return _toml_str(value.text)
    if isinstance(value, RateLimit):
        return _toml_str(format_rate_limit(value))
    if isinstance(value, Path | str):
        return _toml_str(str(value))
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v, spec, dotted) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v, spec, dotted)}" for k, v in value.items()) + " }"
    return _toml_str(str(value))


def _render_table(obj: Any, dotted: str, lines: list[str], header: str = "") -> None:
    specs = key_specs(type(obj))
    lines.append(header or f"[{dotted}]")
    for key, spec in specs.items():
        if spec.table is None and spec.array is None:
            lines.append(f"{key} = {_toml_value(getattr(obj, spec.name), spec, f'{dotted}.{key}')}")
    for key, spec in specs.items():
        if spec.table is not None:
            lines.append("")
            _render_table(getattr(obj, spec.name), f"{dotted}.{key}", lines)
    for key, spec in specs.items():
        if spec.array is not None:
            _render_array(getattr(obj, spec.name), f"{dotted}.{key}", lines)


def _render_array(items: Any, dotted: str, lines: list[str]) -> None:
    """An array of tables as `[[dotted]]` blocks, secrets masked like any other."""
    for item in items:
        lines.append("")
        _render_table(item, dotted, lines, header=f"[[{dotted}]]")


def render(config: Config) -> str:
    """The effective settings as valid TOML, secrets masked: what `shiptrackd --check-config` prints."""
    lines = [
        "# shiptrackd effective configuration (secrets masked)",
        f"# source: {config.source if config.source else 'defaults and environment only'}",
    ]
    for key, spec in key_specs(Config).items():
        lines.append("")
        if spec.table is not None:
            _render_table(getattr(config, spec.name), key, lines)
    for entry in config.providers:
        lines.append("")
        _render_table(entry, "providers", lines, header="[[providers]]")
    for key, spec in key_specs(Config).items():
        if spec.array is not None:
            _render_array(getattr(config, spec.name), key, lines)
    return "\n".join(lines) + "\n"
