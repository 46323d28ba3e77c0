"""
Checks of the keys that let data leave the box: `[[outbound]]` endpoints and `[api]` tokens.

Each key's type and range were checked by the schema; these need more than one key (a URL that
points at one of our own listeners, a name used twice, a token given two ways) or a format the
type cannot say (`whsec_` + base64 of 24-64 bytes, a hex SHA-256). Every failure names the key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import urlsplit

from shiptrackd.errors import ConfigError
from shiptrackd.wire.names import STATUS_CODES

from .shapes import NOTICE_FIELDS, OUTBOUND_EVENTS, TOKEN_SCOPES, Config, Notice, OutboundEndpoint

SECRET_HINT = '"whsec_" followed by the base64 of 24 to 64 random bytes (Standard Webhooks)'
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "")


def decode_whsec(text: str) -> bytes | None:
    """The key bytes of a `whsec_...` secret, or None when it is not one of 24-64 bytes."""
    if not text.startswith("whsec_"):
        return None
    body = text[len("whsec_") :]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if 24 <= len(key) <= 64 else None


def _listeners(config: Config) -> list[tuple[str, str]]:
    """(key, HOST:PORT) of every TCP listener this daemon opens."""
    out = [("daemon.metrics_listen", config.daemon.metrics_listen), ("api.listen", config.api.listen)]
    return [(key, value) for key, value in out if value]


def _points_at(url_host: str, url_port: int, listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]").lower()
    if not port.isdigit() or int(port) != url_port:
        return False
    if host in ("0.0.0.0", "::", ""):  # every interface: any local name reaches it
        return url_host in _LOCAL_HOSTS or url_host.startswith("127.")
    same_loopback = host in _LOCAL_HOSTS and url_host in _LOCAL_HOSTS
    return url_host == host or same_loopback


def _check_endpoint(i: int, ep: OutboundEndpoint, config: Config) -> None:
    key = f"outbound[{i}]"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", ep.name):
        raise ConfigError(
            f"{key}.name = {json.dumps(ep.name)}: expected 1 to 64 letters, digits, '.', '_' or '-' (a name to type)"
        )
    parts = urlsplit(ep.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}.url = {json.dumps(ep.url)}: expected an http:// or https:// URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{key}.url = {json.dumps(ep.url)}: expected a port from 1 to 65535") from None
    for listen_key, listen in _listeners(config):
        if _points_at(parts.hostname.lower(), port, listen):
            raise ConfigError(
                f"{key}.url = {json.dumps(ep.url)} points at this daemon's own listener {listen_key} = "
                f"{json.dumps(listen)}: expected the application's address"
            )
    if not ep.secret:
        raise ConfigError(f"{key}.secret is missing: expected {SECRET_HINT} (or secret_file)")
    if decode_whsec(ep.secret.get()) is None:
        raise ConfigError(f'{key}.secret = "***": expected {SECRET_HINT}')
    for j, event in enumerate(ep.events):
        if event not in OUTBOUND_EVENTS:
            raise ConfigError(
                f"{key}.events[{j}] = {json.dumps(event)}: expected one of "
                + ", ".join(json.dumps(e) for e in OUTBOUND_EVENTS)
            )
    if not ep.events:
        raise ConfigError(f"{key}.events = []: expected at least one of " + ", ".join(OUTBOUND_EVENTS))
    for j, status in enumerate(ep.statuses):
        if status not in STATUS_CODES:
            raise ConfigError(
                f"{key}.statuses[{j}] = {json.dumps(status)}: expected a two-letter status code, one of "
                + ", ".join(STATUS_CODES)
            )
    for j, carrier in enumerate(ep.carriers):
        if not carrier.strip():
            raise ConfigError(f'{key}.carriers[{j}] = "": expected a carrier code such as "ups"')
    if not ep.retry_schedule:
        raise ConfigError(f"{key}.retry_schedule = []: expected at least one delay (the first is usually 0s)")
    if len(ep.retry_schedule) > 50:
        raise ConfigError(f"{key}.retry_schedule has {len(ep.retry_schedule)} delays: expected from 1 to 50")


def _check_tokens(config: Config) -> None:
    seen: set[str] = set()
    for i, token in enumerate(config.api.tokens):
        key = f"api.tokens[{i}]"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", token.name):
            raise ConfigError(
                f"{key}.name = {json.dumps(token.name)}: expected 1 to 64 letters, digits, '.', '_' or '-'"
            )
        if token.name in seen:
            raise ConfigError(f"{key}.name = {json.dumps(token.name)} is used twice: expected unique token names")
        seen.add(token.name)
        if token.scope not in TOKEN_SCOPES:
            raise ConfigError(f"{key}.scope = {json.dumps(token.scope)}: expected one of {', '.join(TOKEN_SCOPES)}")
        if bool(token.token) == bool(token.token_sha256):
            raise ConfigError(f"{key}: expected exactly one of token, token_file or token_sha256")
        if token.token and len(token.token.get()) < 16:
            raise ConfigError(f'{key}.token = "***": expected at least 16 characters (32 random bytes, hex or base64)')
        if token.token_sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", token.token_sha256):
            raise ConfigError(f"{key}.token_sha256 = {json.dumps(token.token_sha256)}: expected 64 hex digits")
    if config.api.listen and not config.api.tokens:
        raise ConfigError(
            f"api.listen = {json.dumps(config.api.listen)} with no [[api.tokens]]: "
            "expected at least one token (the TCP door never opens unauthenticated)"
        )


def parse_quiet_hours(text: str) -> tuple[int, int] | None:
    """ "22:00-07:00" -> (1320, 420) minutes of the day (UTC); "" -> None; ValueError otherwise."""
    if not text.strip():
        return None
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not m:
        raise ValueError
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        raise ValueError
    return h1 * 60 + m1, h2 * 60 + m2


def check_template(text: str) -> str | None:
    """The first unknown or malformed {field} of a notice template, or None when it is good."""
    import string

    try:
        for _literal, name, _spec, _conv in string.Formatter().parse(text):
            if name is not None and name not in NOTICE_FIELDS:
                return name or "{}"
    except ValueError as exc:
        return str(exc)
    return None


NOTICE_TAG_PREFIX = "tag:"
_NOTICE_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def notice_tag(value: str) -> str | None:
    """The Apprise tag a `to` entry names ("tag:Support" -> "support", as Apprise lower-cases tags), or None."""
    if not value.strip().lower().startswith(NOTICE_TAG_PREFIX):
        return None
    return value.strip()[len(NOTICE_TAG_PREFIX) :].strip().lower()


def _check_recipient(key: str, value: str, config: Config) -> None:
    """One `to` entry: an Apprise URL, or `tag:NAME` for the channels of `[alerts] config` carrying NAME."""
    tag = notice_tag(value)
    if tag is None:  # an Apprise URL: its form was checked by the schema
        return
    if not _NOTICE_TAG.fullmatch(tag):
        raise ConfigError(
            f"{key} = {json.dumps(value)}: expected \"tag:NAME\", NAME 1 to 64 letters, digits, '_' or '-' "
            "(an Apprise tag of the [alerts] config file)"
        )
    if config.alerts.config is None:
        raise ConfigError(
            f"{key} = {json.dumps(value)}: the tag {tag} names channels of the Apprise config file, but "
            'alerts.config is not set: expected [alerts] config = "/etc/shiptrackd/apprise.yml" with a channel '
            f"tagged {tag}, or an Apprise URL"
        )


def _check_notice(i: int, notice: Notice, names: set[str], config: Config) -> None:
    key = f"notices[{i}]"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", notice.name) or notice.name in names:
        raise ConfigError(f"{key}.name = {json.dumps(notice.name)}: expected a unique name of letters, digits, . _ -")
    names.add(notice.name)
    if not notice.on:
        raise ConfigError(f"{key}.on = []: expected status codes ({', '.join(STATUS_CODES)}) or detail codes")
    for j, code in enumerate(notice.on):
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{1,63}", code):
            raise ConfigError(
                f"{key}.on[{j}] = {json.dumps(code)}: expected a two-letter status code ({', '.join(STATUS_CODES)}) "
                'or an upper-case detail code such as "OUT_FOR_DELIVERY"'
            )
    if not notice.to:
        raise ConfigError(f'{key}.to = []: expected at least one Apprise URL or "tag:NAME"')
    for j, recipient in enumerate(notice.to):
        _check_recipient(f"{key}.to[{j}]", recipient.get(), config)
    for field_name in ("title", "body"):
        bad = check_template(getattr(notice, field_name))
        if bad is not None:
            raise ConfigError(
                f"{key}.{field_name} has {{{bad}}}: expected fields from "
                + ", ".join(f"{{{f}}}" for f in NOTICE_FIELDS)
            )
    try:
        parse_quiet_hours(notice.quiet_hours)
    except ValueError:
        raise ConfigError(
            f'{key}.quiet_hours = {json.dumps(notice.quiet_hours)}: expected "HH:MM-HH:MM" (UTC), or "" for none'
        ) from None


def check_leaving(config: Config) -> None:
    """Raise ConfigError naming the key when an endpoint or a token is unusable or unsafe."""
    names: set[str] = set()
    for i, ep in enumerate(config.outbound):
        _check_endpoint(i, ep, config)
        if ep.name in names:
            raise ConfigError(f"outbound[{i}].name = {json.dumps(ep.name)} is used twice: expected unique names")
        names.add(ep.name)
    _check_tokens(config)
    notice_names: set[str] = set()
    for i, notice in enumerate(config.notices):
        _check_notice(i, notice, notice_names, config)
