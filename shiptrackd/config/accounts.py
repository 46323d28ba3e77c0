"""
Several provider accounts: the `[[providers]]` array of tables, read and checked as a whole.

Each entry has the [provider] keys plus `name` (the account), `kind` (its API: one of
PROVIDER_NAMES), `carriers` (the carrier codes routed to it) and `default = true` for the one
that takes every other carrier. Without entries the single [provider] table (and the seed's
environment variables) is the one account, its `name` being its kind, as before.

Bad entries are configuration errors naming the entry: an unknown kind, a missing key, a
name used twice, a carrier routed to two entries, two defaults.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shiptrackd.errors import ConfigError

from .schema import show_value
from .shapes import PROVIDER_NAMES, Config, ProviderConfig
from .sources import build_config, walk_table

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_CARRIER_RE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")


def read_entries(raw: Any, origin: str, base_dir: Path | None) -> tuple[ProviderConfig, ...]:
    """The `providers` value of a TOML file (an array of tables) as ProviderConfigs, each key checked."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(f"providers = {show_value(raw)} {origin}: expected [[providers]] tables")
    entries = []
    for i, table in enumerate(raw):
        values = walk_table(ProviderConfig, table, f"providers[{i}].", origin, base_dir)
        entries.append(build_config(ProviderConfig, values))
    return tuple(entries)


def check_entries(entries: tuple[ProviderConfig, ...], origin: str) -> None:
    """Raise ConfigError naming the entry when the accounts contradict themselves."""
    names: dict[str, int] = {}
    routes: dict[str, int] = {}
    default: int | None = None
    for i, entry in enumerate(entries):
        where = f"providers[{i}] ({entry.name!r})" if entry.name else f"providers[{i}]"
        if not _NAME_RE.fullmatch(entry.name):
            raise ConfigError(
                f"{where}.name {origin}: expected 1-40 lowercase letters, digits, '-' or '_' (the account's name)"
            )
        if entry.name in names:
            raise ConfigError(f"{where}.name {origin}: providers[{names[entry.name]}] has the same name")
        names[entry.name] = i
        if entry.kind not in PROVIDER_NAMES:
            kinds = ", ".join(f'"{k}"' for k in PROVIDER_NAMES)
            raise ConfigError(f"{where}.kind = {show_value(entry.kind)} {origin}: expected one of {kinds}")
        if not entry.api_key.get():
            raise ConfigError(f"{where}: api_key (or api_key_file) is required {origin}")
        for carrier in entry.carriers:
            if not _CARRIER_RE.fullmatch(carrier):
                raise ConfigError(f'{where}.carriers: {carrier!r} {origin}: expected a carrier code such as "usps"')
            if carrier in routes:
                other = entries[routes[carrier]].name
                raise ConfigError(
                    f"{where}.carriers {origin}: carrier {carrier!r} is already routed to providers[{routes[carrier]}]"
                    f" ({other!r}); a carrier goes to one provider"
                )
            routes[carrier] = i
        if entry.default:
            if default is not None:
                raise ConfigError(
                    f"{where}.default {origin}: providers[{default}] ({entries[default].name!r}) is the default"
                    " already; set default = true on one entry"
                )
            default = i


def with_entries(config: Config, table: Mapping[str, Any], origin: str, base_dir: Path | None) -> Config:
    """The config with the file's [[providers]] read and checked (the caller pops them from the table)."""
    raw = table.get("providers")
    if raw is None:
        return config
    entries = read_entries(raw, origin, base_dir)
    check_entries(entries, origin)
    return dataclasses.replace(config, providers=entries)


def accounts(config: Config) -> tuple[ProviderConfig, ...]:
    """Every provider account, the default first: the [[providers]] entries, else [provider] as the one."""
    if not config.providers:
        single = config.provider
        return (dataclasses.replace(single, kind=single.kind or single.name, default=True),)
    entries = list(config.providers)
    first = next((i for i, e in enumerate(entries) if e.default), 0)  # none marked: the first is the default
    entries.insert(0, dataclasses.replace(entries.pop(first), default=True))
    return tuple(entries)


def routes(config: Config) -> dict[str, str]:
    """carrier code -> the account name that serves it (carriers no entry names go to the default)."""
    return {carrier: entry.name for entry in accounts(config) for carrier in entry.carriers}
