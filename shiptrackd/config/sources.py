"""
The layers a Config is assembled from, each read into a nested dict of converted values.

A TOML table (unknown keys rejected with a "did you mean" suggestion, `*_file` keys read), the
SHIPTRACK_* environment, the seed's aliases (SHIPENGINE_*, and ALERT_* families turned into Apprise
URLs) and systemd credentials in $CREDENTIALS_DIRECTORY. Keeping the layers apart from the loader
lets each be read and tested on its own; load() only orders them, and merge_layers/build_config fold the
result into the frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from shiptrackd.errors import ConfigError
from shiptrackd.units import format_size

from .files import FileRefusedError, read_regular_file
from .schema import (
    ENV_PREFIX,
    FALSE_WORDS,
    NON_CONFIG_ENV,
    TRUE_WORDS,
    Where,
    all_keys,
    check_url_list,
    convert_value,
    env_index,
    fail_value,
    key_specs,
    show_value,
)
from .shapes import Config, Secret
from .values import mask_url

# --- secret files -------------------------------------------------------------------------------

SECRET_FILE_MAX_BYTES = 64 * 1024  # a key or a list of Apprise URLs; /dev/zero reached 5.96 GB RSS in 15 s


def read_secret_text(path: Path) -> str:
    """The text of a secret file: a regular file of at most SECRET_FILE_MAX_BYTES (see files.read_regular_file)."""
    data = read_regular_file(path, SECRET_FILE_MAX_BYTES, "a secret file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefusedError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _parse_secret_lines(text: str) -> list[str]:
    """One value per line; blank lines and # comments skipped (the `apprise-urls` credential format)."""
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def _read_secret_file(path_value: Any, where: Where, many: bool) -> Any:
    """The content of a `*_file` key: the secret (stripped), or for a list one item per line."""
    if not isinstance(path_value, str) or not path_value.strip():
        fail_value(where, path_value, "a path to a file holding the secret")
    path = Path(path_value).expanduser()
    if not path.is_absolute():
        path = (where.base_dir or Path.cwd()) / path
    try:
        text = read_secret_text(path)
    except FileRefusedError as exc:
        raise ConfigError(
            f"{where.dotted} = {show_value(path_value)} {where.origin}: cannot read {path}: it {exc}; "
            f"expected a regular file of at most {format_size(SECRET_FILE_MAX_BYTES)} holding the secret"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"{where.dotted} = {show_value(path_value)} {where.origin}: cannot read {path} ({reason}); "
            "expected a readable file holding the secret"
        ) from None
    if many:
        return _parse_secret_lines(text)
    if not text.strip():
        fail_value(where, path_value, f"a file holding the secret, but {path} is empty")
    return text.strip()


# --- reading layers into nested dicts of converted values ----------------------------------------


def _suggest(word: str, table: type, prefix: str) -> str:
    """ "; did you mean X?" for the nearest key of *table*, else the nearest key anywhere, else ""."""
    import difflib  # error path only: keeps `import shiptrackd.config` light

    local = [*key_specs(table)] + [f"{k}_file" for k, s in key_specs(table).items() if s.secret]
    match = difflib.get_close_matches(word, local, n=1, cutoff=0.6)
    if match:
        spec = key_specs(table).get(match[0])
        shown = f"[{prefix}{match[0]}]" if spec is not None and spec.table is not None else prefix + match[0]
        return f"; did you mean {shown}?"
    everywhere = {dotted.rsplit(".", 1)[-1]: dotted for dotted, _ in all_keys()}
    match = difflib.get_close_matches(word, list(everywhere), n=1, cutoff=0.8)
    return f"; did you mean {everywhere[match[0]]}?" if match else ""


def walk_table(cls: type, table: Mapping[str, Any], prefix: str, origin: str, base_dir: Path | None) -> dict[str, Any]:
    """Convert one TOML table (and its sub-tables) against *cls*; unknown keys are errors."""
    specs = key_specs(cls)
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        spec = specs.get(key)
        if spec is None and key.endswith("_file") and (target := specs.get(key[:-5])) and target.secret:
            where = Where(dotted, origin, base_dir=base_dir)
            if target.key in table:
                raise ConfigError(f"{prefix}{target.key} and {dotted} are both set {origin}: expected one of them")
            raw = _read_secret_file(value, where, many=target.hint != Secret)
            out[target.name] = convert_value(target.hint, raw, Where(dotted, origin, secret=True), target)
            continue
        if spec is None:
            if not prefix and isinstance(value, dict):
                raise ConfigError(f"unknown section [{key}] {origin}{_suggest(key, cls, prefix)}")
            raise ConfigError(f"unknown key {dotted} {origin}{_suggest(key, cls, prefix)}")
        if spec.table is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted} = {show_value(value)} {origin}: expected a table [{dotted}]")
            out[spec.name] = walk_table(spec.table, value, f"{dotted}.", origin, base_dir)
        elif spec.array is not None:
            out[spec.name] = _walk_array(spec.array, value, dotted, origin, base_dir)
        else:
            out[spec.name] = convert_value(spec.hint, value, Where(dotted, origin, False, base_dir, spec.secret), spec)
    return out


def _walk_array(cls: type, value: Any, dotted: str, origin: str, base_dir: Path | None) -> tuple[Any, ...]:
    """An array of tables (`[[outbound]]`): each item walked against *cls* and built, required keys checked."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(f"{dotted} = {show_value(value)} {origin}: expected an array of tables [[{dotted}]]")
    items = []
    for i, table in enumerate(value):
        prefix = f"{dotted}[{i}]."
        walked = walk_table(cls, table, prefix, origin, base_dir)
        for spec in key_specs(cls).values():
            if not spec.has_default and spec.name not in walked:
                raise ConfigError(f"{prefix}{spec.key} is missing {origin}: expected every [[{dotted}]] to set it")
        items.append(build_config(cls, walked))
    return tuple(items)


def set_dotted(values: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        values = values.setdefault(part, {})
    values[path[-1]] = value


def _field_path(dotted: str) -> list[str]:
    """Field names along a dotted key: "provider.timeout" -> ["provider", "timeout_s"]."""
    cls: type = Config
    names = []
    for key in dotted.split("."):
        spec = key_specs(cls)[key]
        names.append(spec.name)
        cls = spec.table or cls
    return names


def env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """SHIPTRACK_<SECTION>__<KEY> variables; an unknown one is an error with the nearest valid name."""
    index = env_index()
    out: dict[str, Any] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in NON_CONFIG_ENV:
            continue
        if name not in index:
            import difflib  # error path only, as in _suggest

            match = difflib.get_close_matches(name, [*index, *NON_CONFIG_ENV], n=1, cutoff=0.6)
            hint = f"; did you mean {match[0]}?" if match else ""
            raise ConfigError(f"unknown environment variable {name}{hint}")
        value = env[name]
        if value == "":
            continue  # set but empty: as if unset (compose files and EnvironmentFile= do this)
        dotted, spec, is_file = index[name]
        where = Where(dotted, f"from {name}", from_env=True, secret=spec.secret)
        if is_file:
            raw = _read_secret_file(value, dataclasses.replace(where, secret=False), many=spec.hint != Secret)
            converted = convert_value(spec.hint, raw, dataclasses.replace(where, from_env=False), spec)
        else:
            converted = convert_value(spec.hint, value, where, spec)
        set_dotted(out, _field_path(dotted), converted)
    return out


SEED_ALIASES = {
    "TRACKING_API_PROVIDER": "provider.name",
    "SHIPENGINE_API_KEY": "provider.api_key",
    "SHIPENGINE_BASE_URL": "provider.base_url",
    "SHIPENGINE_WEBHOOK_SECRET": "provider.webhook_secret",
}


def _alias_bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw and raw not in TRUE_WORDS + FALSE_WORDS:
        raise ConfigError(f"{name}={raw!r}: expected true or false")
    return raw in TRUE_WORDS


def _require(env: Mapping[str, str], name: str, because: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: expected it because {because}")
    return value


def _email_url(env: Mapping[str, str]) -> str:
    """ALERT_EMAIL_* / ALERT_SMTP_* -> a mailto:// (or mailtos:// for 465/587) Apprise URL."""
    why = "ALERT_EMAIL_ENABLED is true"
    recipients = [r.strip() for r in _require(env, "ALERT_EMAIL_RECIPIENTS", why).split(",") if r.strip()]
    host = _require(env, "ALERT_SMTP_HOST", why)
    port_text = env.get("ALERT_SMTP_PORT", "").strip()
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ConfigError(f"ALERT_SMTP_PORT={port_text!r}: expected a TCP port number such as 587")
    port = int(port_text) if port_text else None
    user, password = env.get("ALERT_SMTP_USER", "").strip(), env.get("ALERT_SMTP_PASS", "")
    scheme = "mailtos" if port in (465, 587) else "mailto"
    userinfo = ""
    if user:
        userinfo = quote(user, safe="") + (":" + quote(password, safe="") if password else "") + "@"
    query = []
    if port == 465:
        query.append("mode=ssl")  # implicit TLS; Apprise's mailtos:// default is STARTTLS
    elif port == 587:
        query.append("mode=starttls")
    if "@" in user:
        query.append("from=" + quote(user, safe="@"))
    query.append("to=" + ",".join(quote(r, safe="@") for r in recipients))
    return f"{scheme}://{userinfo}{host}{f':{port}' if port else ''}?{'&'.join(query)}"


def _slack_url(env: Mapping[str, str]) -> str:
    """ALERT_SLACK_* -> slack://A/B/C/#channel from https://hooks.slack.com/services/A/B/C."""
    hook = _require(env, "ALERT_SLACK_WEBHOOK_URL", "ALERT_SLACK_ENABLED is true")
    m = re.fullmatch(r"https://hooks\.slack\.com/services/([^/?#]+)/([^/?#]+)/([^/?#]+)/?", hook)
    if not m:
        raise ConfigError(
            f"ALERT_SLACK_WEBHOOK_URL={json.dumps(mask_url(hook))}: "
            "expected https://hooks.slack.com/services/T.../B.../XXXX"
        )
    channel = env.get("ALERT_SLACK_CHANNEL", "").strip()
    if channel and channel[0] not in "#@":
        channel = "#" + channel
    return f"slack://{m[1]}/{m[2]}/{m[3]}" + (f"/{channel}" if channel else "")


def _webhook_url(env: Mapping[str, str]) -> str:
    """ALERT_WEBHOOK_URL http(s)://... -> Apprise's json:// or jsons:// form of the same address."""
    url = _require(env, "ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_ENABLED is true")
    scheme, sep, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not sep or not urlsplit(url).hostname:
        raise ConfigError(f"ALERT_WEBHOOK_URL={json.dumps(mask_url(url))}: expected an http:// or https:// URL")
    return ("jsons://" if scheme.lower() == "https" else "json://") + rest


def alias_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The seed's variables: provider aliases as values, ALERT_* families as extra Apprise URLs."""
    out: dict[str, Any] = {}
    specs = dict(all_keys())
    for name, dotted in SEED_ALIASES.items():
        value = env.get(name, "")
        if value.strip():
            where = Where(dotted, f"from {name}", from_env=True, secret=specs[dotted].secret)
            set_dotted(out, _field_path(dotted), convert_value(specs[dotted].hint, value, where, specs[dotted]))
    urls = []
    if _alias_bool(env, "ALERT_EMAIL_ENABLED"):
        urls.append(_email_url(env))
    if _alias_bool(env, "ALERT_SLACK_ENABLED"):
        urls.append(_slack_url(env))
    if _alias_bool(env, "ALERT_WEBHOOK_ENABLED"):
        urls.append(_webhook_url(env))
    return out, urls


CREDENTIAL_API_KEY = "shipengine-api-key"
CREDENTIAL_APPRISE_URLS = "apprise-urls"
CREDENTIAL_STORE_PASSWORD = "store-password"


def credentials_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """systemd LoadCredential= files in $CREDENTIALS_DIRECTORY; a missing, empty or comment-only one is skipped."""
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        return {}, []

    def read(name: str) -> str:
        path = Path(directory) / name
        try:
            return read_secret_text(path)
        except FileNotFoundError:
            return ""
        except FileRefusedError as exc:
            raise ConfigError(f"credential {name}: cannot read {path}: it {exc}") from None
        except OSError as exc:
            raise ConfigError(f"credential {name}: cannot read {path} ({exc.strerror or exc})") from None

    out: dict[str, Any] = {}
    # Blank and "#" lines are skipped in both: the unit's SetCredential= fallback is "# not set".
    if keys := _parse_secret_lines(read(CREDENTIAL_API_KEY)):
        out["provider"] = {"api_key": Secret(keys[0])}
    if passwords := _parse_secret_lines(read(CREDENTIAL_STORE_PASSWORD)):
        out["store"] = {"password": Secret(passwords[0])}
    where = Where("alerts.urls", f"from credential {CREDENTIAL_APPRISE_URLS}", secret=True)
    urls = [s.get() for s in check_url_list(_parse_secret_lines(read(CREDENTIAL_APPRISE_URLS)), where)]
    return out, urls


def merge_layers(dst: dict[str, Any], src: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            merge_layers(dst[key], value)
        else:
            dst[key] = value
    return dst


def build_config(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of *cls* from converted *values*; fields not given keep their defaults."""
    kwargs = {}
    for spec in key_specs(cls).values():
        if spec.name in values:
            value = values[spec.name]
            kwargs[spec.name] = build_config(spec.table, value) if spec.table is not None else value
        elif spec.table is not None and not spec.has_default:
            kwargs[spec.name] = build_config(spec.table, {})
    return cls(**kwargs)
