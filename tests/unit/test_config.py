"""Configuration loading: schema, precedence, aliases, credentials, errors, render, schedules."""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shiptrackd import config as cfg
from shiptrackd.config import (
    AlertsConfig,
    CadenceConfig,
    Config,
    RateLimit,
    Schedule,
    Secret,
    format_duration,
    load,
    mask_url,
    next_fire,
    parse_duration,
    parse_schedule,
    render,
)
from shiptrackd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"


@pytest.fixture(autouse=True)
def _no_system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host's real /etc/shiptrackd/shiptrackd.toml must not leak into these tests."""
    monkeypatch.setattr(cfg, "SYSTEM_CONFIG_PATH", tmp_path / "no-system-config.toml")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A small, explicit environment: XDG dirs in tmp_path, no HOME surprises."""
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
    }


def write(tmp_path: Path, text: str, name: str = "shiptrackd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, env: dict[str, str], text: str) -> Config:
    return load(write(tmp_path, text), env)


# --- defaults -------------------------------------------------------------------------------------


def test_defaults_without_file_use_xdg_state_and_state_dir_socket(tmp_path: Path, env: dict[str, str]) -> None:
    """With no file and no XDG_RUNTIME_DIR, state goes to $XDG_STATE_HOME/shiptrackd and the socket inside it."""
    config = load(None, env)
    assert config.daemon.state_dir == tmp_path / "state" / "shiptrackd"
    assert config.daemon.socket == tmp_path / "state" / "shiptrackd" / "control.sock"
    assert config.source is None
    assert config.provider == cfg.ProviderConfig()
    assert config.sync == cfg.SyncConfig()


def test_default_socket_goes_to_xdg_runtime_dir(tmp_path: Path, env: dict[str, str]) -> None:
    """XDG_RUNTIME_DIR, when set, holds the socket as shiptrackd/control.sock."""
    config = load(None, {**env, "XDG_RUNTIME_DIR": str(tmp_path / "run")})
    assert config.daemon.socket == tmp_path / "run" / "shiptrackd" / "control.sock"


def test_state_dir_falls_back_to_home_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """Without XDG_STATE_HOME the state is in ~/.local/state/shiptrackd, and without a home in ./.shiptrackd."""
    assert load(None, {"HOME": "/home/op"}).daemon.state_dir == Path("/home/op/.local/state/shiptrackd")
    monkeypatch.chdir(tmp_path)
    assert load(None, {}).daemon.state_dir == tmp_path / ".shiptrackd"


def test_state_dir_from_file_moves_the_default_socket(tmp_path: Path, env: dict[str, str]) -> None:
    """The default socket follows a state_dir set in the file (when XDG_RUNTIME_DIR is unset)."""
    config = load_text(tmp_path, env, '[daemon]\nstate_dir = "/srv/st"\n')
    assert config.daemon.socket == Path("/srv/st/control.sock")


def test_relative_paths_are_relative_to_the_file(tmp_path: Path, env: dict[str, str]) -> None:
    """A relative state_dir in the file is taken relative to the file's directory, not the cwd."""
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc", '[daemon]\nstate_dir = "data"\nsocket = "../run/c.sock"\n')
    config = load(path, env)
    assert config.daemon.state_dir == tmp_path / "etc" / "data"
    assert config.daemon.socket == tmp_path / "etc" / ".." / "run" / "c.sock"
    assert config.source == path


def test_shiptrack_config_names_the_file(tmp_path: Path, env: dict[str, str]) -> None:
    """SHIPTRACK_CONFIG is read when no path is given."""
    path = write(tmp_path, "[provider]\nconcurrency = 3\n")
    assert load(None, {**env, "SHIPTRACK_CONFIG": str(path)}).provider.concurrency == 3


def test_default_config_location_is_read_when_present(tmp_path: Path, env: dict[str, str]) -> None:
    """$XDG_CONFIG_HOME/shiptrackd/shiptrackd.toml is picked up without being named."""
    (tmp_path / "xdg-config" / "shiptrackd").mkdir(parents=True)
    write(tmp_path / "xdg-config" / "shiptrackd", "[sync]\nbatch_size = 7\n")
    config = load(None, env)
    assert config.sync.batch_size == 7
    assert config.source == tmp_path / "xdg-config" / "shiptrackd" / "shiptrackd.toml"


def test_example_file_loads_to_the_defaults(env: dict[str, str]) -> None:
    """config.example.toml is valid and every value in it equals the built-in default."""
    assert dataclasses.replace(load(EXAMPLE, env), source=None) == load(None, env)


def test_example_file_documents_every_key() -> None:
    """Every schema key (new fields included) appears in config.example.toml, in its section."""
    sections: dict[str, set[str]] = {}
    current = ""
    for line in EXAMPLE.read_text().splitlines():
        if m := re.match(r"^\[([\w.]+)\]", line):
            current = m[1]
        elif m := re.match(r"^#?\s*(\w+)\s*=", line):
            sections.setdefault(current, set()).add(m[1])
    missing = [
        dotted
        for dotted, _spec in cfg.all_keys()
        if dotted.rsplit(".", 1)[-1] not in sections.get(dotted.rsplit(".", 1)[0], set())
    ]
    assert missing == [], f"add these keys to config.example.toml: {missing}"


def test_every_key_has_a_default() -> None:
    """Every key except daemon.state_dir and daemon.socket (computed) has a default, so no file is needed."""
    without = [dotted for dotted, spec in cfg.all_keys() if not spec.has_default]
    assert without == ["daemon.state_dir", "daemon.socket"]


# --- values and precedence ------------------------------------------------------------------------


def test_file_values_of_every_kind_are_read(tmp_path: Path, env: dict[str, str]) -> None:
    """Durations, schedules, rates, modes, levels, bools, ints and lists are all converted from TOML."""
    config = load_text(
        tmp_path,
        env,
        """
[daemon]
socket_mode = "0600"
log_level = "debug"
log_format = "json"
shutdown_grace = "1m30s"
[provider]
timeout = 5
rate_limit = "5/s"
retries = 0
[sync]
schedule = "@hourly"
force_schedule = "30 3 * * 1-5"
batch_size = 1
[sync.cadence]
in_transit = "45m"
[alerts]
urls = ["json://localhost:9000/hook"]
send_resolved = false
""",
    )
    assert config.daemon.socket_mode == 0o600
    assert config.daemon.log_level == "DEBUG"
    assert config.daemon.log_format == "json"
    assert config.daemon.shutdown_grace_s == 90
    assert config.provider.timeout_s == 5
    assert config.provider.rate_limit == RateLimit(5, 1.0)
    assert config.provider.retries == 0
    assert config.sync.schedule == Schedule("@hourly", cron="0 * * * *")
    assert config.sync.force_schedule.cron == "30 3 * * 1-5"
    assert config.sync.cadence.in_transit == 45 * 60
    assert config.sync.cadence.accepted == CadenceConfig().accepted
    assert config.alerts.urls == (Secret("json://localhost:9000/hook"),)
    assert config.alerts.send_resolved is False


def test_rate_limit_none_means_unlimited(tmp_path: Path, env: dict[str, str]) -> None:
    """rate_limit = "unlimited" (or "none") gives None."""
    assert load_text(tmp_path, env, '[provider]\nrate_limit = "unlimited"\n').provider.rate_limit is None
    assert load(None, {**env, "SHIPTRACK_PROVIDER__RATE_LIMIT": "none"}).provider.rate_limit is None


def test_precedence_defaults_file_env(tmp_path: Path, env: dict[str, str]) -> None:
    """The environment beats the file, which beats the defaults, key by key."""
    path = write(tmp_path, '[provider]\ntimeout = "20s"\nconcurrency = 4\n[sync.cadence]\nin_transit = "3h"\n')
    config = load(
        path,
        {**env, "SHIPTRACK_PROVIDER__TIMEOUT": "30s", "SHIPTRACK_SYNC__CADENCE__IN_TRANSIT": "1h"},
    )
    assert config.provider.timeout_s == 30  # env
    assert config.provider.concurrency == 4  # file
    assert config.provider.retries == 3  # default
    assert config.sync.cadence.in_transit == 3600  # env, nested


@pytest.mark.parametrize(
    ("name", "value", "attr", "expected"),
    [
        ("SHIPTRACK_PROVIDER__RATE_LIMIT", "5/s", ("provider", "rate_limit"), RateLimit(5, 1.0)),
        ("SHIPTRACK_PROVIDER__CONCURRENCY", "16", ("provider", "concurrency"), 16),
        ("SHIPTRACK_ALERTS__SEND_RESOLVED", "no", ("alerts", "send_resolved"), False),
        ("SHIPTRACK_DAEMON__SOCKET_MODE", "0600", ("daemon", "socket_mode"), 0o600),
        ("SHIPTRACK_DAEMON__SOCKET", "/run/x/c.sock", ("daemon", "socket"), Path("/run/x/c.sock")),
        (
            "SHIPTRACK_SYNC__SCHEDULE",
            "*/10 * * * *",
            ("sync", "schedule"),
            Schedule("*/10 * * * *", cron="*/10 * * * *"),
        ),
        ("SHIPTRACK_PROVIDER__API_KEY", "k-123", ("provider", "api_key"), Secret("k-123")),
        (
            "SHIPTRACK_ALERTS__URLS",
            "json://a/x jsons://b/y",
            ("alerts", "urls"),
            (Secret("json://a/x"), Secret("jsons://b/y")),
        ),
        ("SHIPTRACK_ALERTS__URLS", '["json://a/x"]', ("alerts", "urls"), (Secret("json://a/x"),)),
    ],
)
def test_env_values_are_converted(
    env: dict[str, str], name: str, value: str, attr: tuple[str, str], expected: object
) -> None:
    """SHIPTRACK_<SECTION>__<KEY> strings are converted to the field's type."""
    config = load(None, {**env, name: value})
    assert getattr(getattr(config, attr[0]), attr[1]) == expected


def test_empty_env_value_counts_as_unset(env: dict[str, str]) -> None:
    """An empty SHIPTRACK_* variable (as EnvironmentFile= lines often leave) changes nothing."""
    assert load(None, {**env, "SHIPTRACK_PROVIDER__CONCURRENCY": ""}).provider.concurrency == 8


def test_non_config_shiptrack_variables_are_allowed(env: dict[str, str]) -> None:
    """SHIPTRACK_SOCKET (shiptrackctl's) and SHIPTRACK_CONFIG are not mistaken for unknown keys."""
    load(None, {**env, "SHIPTRACK_SOCKET": "/tmp/x.sock"})


def test_new_field_becomes_a_key_automatically(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A field added to a section dataclass is a typed file key and env var at once, with no loader change."""

    @dataclasses.dataclass(frozen=True)
    class Health:
        schedule: Schedule = Schedule("5m", interval_s=300)
        stale_after_s: float = 3600.0
        error_rate: float = 0.2
        tiers: tuple[str, ...] = ("warn",)

    # Stand-in for someone adding fields to HealthConfig: swap the [health] table's class.
    root = dict(cfg.key_specs(Config))
    root["health"] = dataclasses.replace(root["health"], hint=Health)
    monkeypatch.setitem(cfg.SPEC_CACHE, Config, root)
    config = load(
        write(tmp_path, '[health]\nstale_after = "2h"\nerror_rate = 0.5\ntiers = ["a", "b"]\n'),
        {**env, "SHIPTRACK_HEALTH__ERROR_RATE": "0.25"},
    )
    health = config.health
    assert isinstance(health, Health)
    assert (health.stale_after_s, health.error_rate, health.tiers) == (7200, 0.25, ("a", "b"))
    assert 'stale_after = "2h"' in render(config)
    with pytest.raises(ConfigError, match=r"health\.stale_after = \"soon\".*duration"):
        load_text(tmp_path, env, '[health]\nstale_after = "soon"\n')
    with pytest.raises(ConfigError, match=r"did you mean health\.error_rate"):
        load_text(tmp_path, env, "[health]\nerror_rat = 1\n")


# --- secrets: files, aliases, credentials ---------------------------------------------------------


def test_api_key_file_is_read_relative_to_the_config(tmp_path: Path, env: dict[str, str]) -> None:
    """provider.api_key_file names a file (relative to the config) whose stripped content is the key."""
    (tmp_path / "key").write_text("  sekrit-key\n")
    assert load_text(tmp_path, env, '[provider]\napi_key_file = "key"\n').provider.api_key == Secret("sekrit-key")


def test_secret_file_env_variant(tmp_path: Path, env: dict[str, str]) -> None:
    """SHIPTRACK_PROVIDER__API_KEY_FILE and alerts.urls_file read secrets from files too."""
    (tmp_path / "key").write_text("from-file\n")
    (tmp_path / "urls").write_text("# comment\n\njson://h/a\n")
    config = load_text(tmp_path, {**env, "SHIPTRACK_PROVIDER__API_KEY_FILE": str(tmp_path / "key")}, "")
    assert config.provider.api_key == Secret("from-file")
    config = load_text(tmp_path, env, '[alerts]\nurls_file = "urls"\n')
    assert config.alerts.urls == (Secret("json://h/a"),)


SEED_ENV = {
    "TRACKING_API_PROVIDER": "shipengine",
    "SHIPENGINE_API_KEY": "TEST_seedkey",
    "SHIPENGINE_BASE_URL": "http://127.0.0.1:9999",
    "SHIPENGINE_WEBHOOK_SECRET": "whsec",
}


def test_seed_aliases_map_to_provider_keys(env: dict[str, str]) -> None:
    """The seed's TRACKING_API_PROVIDER and SHIPENGINE_* variables set the provider keys."""
    provider = load(None, {**env, **SEED_ENV}).provider
    assert provider.name == "shipengine"
    assert provider.api_key == Secret("TEST_seedkey")
    assert provider.base_url == "http://127.0.0.1:9999"
    assert provider.webhook_secret == Secret("whsec")


def test_aliases_rank_between_file_and_shiptrack_env(tmp_path: Path, env: dict[str, str]) -> None:
    """A seed alias beats the file, and SHIPTRACK_* beats the alias."""
    path = write(tmp_path, '[provider]\napi_key = "file-key"\nbase_url = "https://file.example"\n')
    config = load(path, {**env, **SEED_ENV, "SHIPTRACK_PROVIDER__BASE_URL": "https://env.example"})
    assert config.provider.api_key == Secret("TEST_seedkey")
    assert config.provider.base_url == "https://env.example"


@pytest.mark.parametrize(
    ("alert_env", "url"),
    [
        (
            {"ALERT_SMTP_HOST": "smtp.gmail.com", "ALERT_SMTP_PORT": "587", "ALERT_SMTP_USER": "me@gmail.com"},
            "mailtos://me%40gmail.com:app%20pw@smtp.gmail.com:587?mode=starttls&from=me@gmail.com&to=a@x.com,b@y.com",
        ),
        (
            {"ALERT_SMTP_HOST": "mail.x.com", "ALERT_SMTP_PORT": "465", "ALERT_SMTP_USER": "bot"},
            "mailtos://bot:app%20pw@mail.x.com:465?mode=ssl&to=a@x.com,b@y.com",
        ),
        (
            {"ALERT_SMTP_HOST": "127.0.0.1", "ALERT_SMTP_PORT": "8025", "ALERT_SMTP_PASS": ""},
            "mailto://127.0.0.1:8025?to=a@x.com,b@y.com",
        ),
    ],
)
def test_alert_email_becomes_a_mailto_url(env: dict[str, str], alert_env: dict[str, str], url: str) -> None:
    """ALERT_EMAIL_*/ALERT_SMTP_* give mailtos:// for 465/587 (ssl/starttls) and mailto:// otherwise."""
    base = {"ALERT_EMAIL_ENABLED": "true", "ALERT_EMAIL_RECIPIENTS": "a@x.com, b@y.com", "ALERT_SMTP_PASS": "app pw"}
    assert load(None, {**env, **base, **alert_env}).alerts.urls == (Secret(url),)


def test_alert_slack_and_webhook_become_apprise_urls(env: dict[str, str]) -> None:
    """ALERT_SLACK_* turn into slack://A/B/C/#channel and ALERT_WEBHOOK_URL into jsons://, all appended."""
    alert_env = {
        "ALERT_SLACK_ENABLED": "1",
        "ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
        "ALERT_SLACK_CHANNEL": "alerts",
        "ALERT_WEBHOOK_ENABLED": "yes",
        "ALERT_WEBHOOK_URL": "https://mon.example.com/webhooks/alerts",
        "ALERT_EMAIL_ENABLED": "false",
        "ALERT_EMAIL_RECIPIENTS": "ignored@x.com",
        "SHIPTRACK_ALERTS__URLS": "json://localhost/own",
    }
    assert load(None, {**env, **alert_env}).alerts.urls == (
        Secret("json://localhost/own"),
        Secret("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#alerts"),
        Secret("jsons://mon.example.com/webhooks/alerts"),
    )


def test_credentials_directory_supplies_key_and_urls(tmp_path: Path, env: dict[str, str]) -> None:
    """$CREDENTIALS_DIRECTORY/shipengine-api-key and apprise-urls (systemd LoadCredential=) are read."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "shipengine-api-key").write_text("cred-key\n")
    (creds / "apprise-urls").write_text("# ops\njson://hook/a\n\nmailto://127.0.0.1:25?to=o@x.com\n")
    path = write(tmp_path, '[provider]\napi_key = "file-key"\n[alerts]\nurls = ["json://file/b"]\n')
    config = load(path, {**env, "CREDENTIALS_DIRECTORY": str(creds)})
    assert config.provider.api_key == Secret("cred-key")
    assert config.alerts.urls == (
        Secret("json://file/b"),
        Secret("json://hook/a"),
        Secret("mailto://127.0.0.1:25?to=o@x.com"),
    )


def test_missing_or_placeholder_credentials_are_skipped(tmp_path: Path, env: dict[str, str]) -> None:
    """A missing credential, or the unit's SetCredential= fallback "# not set", leaves the key alone."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "shipengine-api-key").write_text("# not set")
    path = write(tmp_path, '[provider]\napi_key = "file-key"\n')
    config = load(path, {**env, "CREDENTIALS_DIRECTORY": str(creds)})
    assert config.provider.api_key == Secret("file-key")
    assert config.alerts.urls == ()


# --- demo -----------------------------------------------------------------------------------------


def test_demo_config_is_local_and_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """--demo keeps state in ./.shiptrackd-demo, leaves base_url empty and runs short schedules."""
    monkeypatch.chdir(tmp_path)
    config = load(demo=True, env={**env, "SHIPENGINE_API_KEY": "prod-key", "SHIPTRACK_SYNC__BATCH_SIZE": "5"})
    assert config.daemon.state_dir == tmp_path / ".shiptrackd-demo"
    assert config.daemon.socket == tmp_path / ".shiptrackd-demo" / "control.sock"
    assert config.provider.base_url == ""
    assert config.provider.api_key != Secret("prod-key")  # seed aliases do not leak into the demo
    assert config.sync.schedule.interval_s == 10
    assert config.health.schedule.interval_s == 15
    assert config.sync.force_schedule.cron == "0 2 * * *"
    assert config.sync.cadence.in_transit == 20
    assert config.sync.batch_size == 5  # SHIPTRACK_* still applies


# --- errors ---------------------------------------------------------------------------------------

ERROR_CASES = [
    # (id, file text, extra env, message regexes)
    (
        "unknown key",
        "[provider]\ntimout = 5\n",
        {},
        [r"unknown key provider\.timout", r"did you mean provider\.timeout\?"],
    ),
    (
        "unknown section",
        "[provdier]\nname = 'x'\n",
        {},
        [r"unknown section \[provdier\]", r"did you mean \[provider\]\?"],
    ),
    (
        "key in wrong place",
        'log_level = "DEBUG"\n',
        {},
        [r"unknown key log_level", r"did you mean daemon\.log_level\?"],
    ),
    (
        "unknown env var",
        "",
        {"SHIPTRACK_PROVIDER__RATELIMIT": "5/s"},
        [
            r"unknown environment variable SHIPTRACK_PROVIDER__RATELIMIT",
            r"did you mean SHIPTRACK_PROVIDER__RATE_LIMIT\?",
        ],
    ),
    ("wrong type int", '[provider]\nconcurrency = "eight"\n', {}, [r'provider\.concurrency = "eight"', r"an integer"]),
    ("wrong type bool", '[alerts]\nsend_resolved = "yes"\n', {}, [r"alerts\.send_resolved", r"true or false"]),
    ("wrong type table", '[sync]\ncadence = "fast"\n', {}, [r'sync\.cadence = "fast"', r"a table \[sync\.cadence\]"]),
    ("below minimum", "[provider]\nconcurrency = 0\n", {}, [r"provider\.concurrency = 0", r"from 1 to 256"]),
    ("negative retries", "[provider]\nretries = -1\n", {}, [r"provider\.retries = -1", r"from 0 to 20"]),
    (
        "bad duration",
        '[provider]\ntimeout = "15 sec onds"\n',
        {},
        [r'provider\.timeout = "15 sec onds"', r"duration like"],
    ),
    ("zero duration", '[provider]\ntimeout = "0s"\n', {}, [r"provider\.timeout", r"positive duration"]),
    (
        "bad env duration",
        "",
        {"SHIPTRACK_SYNC__CADENCE__IN_TRANSIT": "soon"},
        [r"sync\.cadence\.in_transit", r"SHIPTRACK_SYNC__CADENCE__IN_TRANSIT"],
    ),
    (
        "bad cron",
        '[sync]\nforce_schedule = "61 2 * * *"\n',
        {},
        [r'sync\.force_schedule = "61 2 \* \* \*"', r"Bad minute"],
    ),
    ("six-field cron", '[sync]\nschedule = "0 */5 * * * *"\n', {}, [r"sync\.schedule", r"6 fields", r"exactly five"]),
    ("unknown cron alias", '[sync]\nschedule = "@reboot"\n', {}, [r"sync\.schedule", r"@hourly"]),
    (
        "bad rate limit",
        '[provider]\nrate_limit = "200/minute-ish"\n',
        {},
        [r'provider\.rate_limit = "200/minute-ish"', r'"200/min"'],
    ),
    ("bad log level", '[daemon]\nlog_level = "LOUD"\n', {}, [r'daemon\.log_level = "LOUD"', r"INFO"]),
    ("bad log format", '[daemon]\nlog_format = "xml"\n', {}, [r'daemon\.log_format = "xml"', r'"text", "json"']),
    ("decimal socket mode", "[daemon]\nsocket_mode = 660\n", {}, [r"daemon\.socket_mode = 660", r'"0660"']),
    ("bad base url", '[provider]\nbase_url = "api.shipengine.com"\n', {}, [r"provider\.base_url", r"https://"]),
    ("bad apprise url", '[alerts]\nurls = ["not a url"]\n', {}, [r"alerts\.urls\[0\]", r"Apprise URL"]),
    (
        "key and key_file",
        '[provider]\napi_key = "a"\napi_key_file = "b"\n',
        {},
        [r"provider\.api_key and provider\.api_key_file"],
    ),
    (
        "missing api_key_file",
        '[provider]\napi_key_file = "nope"\n',
        {},
        [r"provider\.api_key_file", r"cannot read .*nope", r"No such file"],
    ),
    ("toml syntax", "[provider]\nname = \n", {}, [r"TOML syntax error", r"line 2"]),
    ("alias email incomplete", "", {"ALERT_EMAIL_ENABLED": "true"}, [r"ALERT_EMAIL_RECIPIENTS is not set"]),
    (
        "alias bad slack url",
        "",
        {"ALERT_SLACK_ENABLED": "true", "ALERT_SLACK_WEBHOOK_URL": "https://x.com/a"},
        [r"ALERT_SLACK_WEBHOOK_URL", r"hooks\.slack\.com"],
    ),
    ("alias bad enabled", "", {"ALERT_WEBHOOK_ENABLED": "maybe"}, [r"ALERT_WEBHOOK_ENABLED='maybe'", r"true or false"]),
]


@pytest.mark.parametrize(
    ("text", "extra_env", "patterns"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_bad_input_raises_one_clear_config_error(
    tmp_path: Path, env: dict[str, str], text: str, extra_env: dict[str, str], patterns: list[str]
) -> None:
    """Each kind of bad input raises ConfigError with one line naming the key, the value and the expectation."""
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), {**env, **extra_env})
    message = str(info.value)
    assert "\n" not in message
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"


def test_error_names_the_file(tmp_path: Path, env: dict[str, str]) -> None:
    """A bad value from a file says which file it came from."""
    path = write(tmp_path, "[provider]\nconcurrency = 0\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load(path, env)


@pytest.mark.parametrize(
    ("text", "extra_env"),
    [
        ("[provider]\napi_key = 12345\n", {}),
        ("", {"SHIPTRACK_ALERTS__URLS": "json://user:hunter2pass@host/x nope"}),
        ("", {"ALERT_SLACK_ENABLED": "1", "ALERT_SLACK_WEBHOOK_URL": "https://hooks.example/x/hunter2pass"}),
    ],
)
def test_errors_mask_secret_values(tmp_path: Path, env: dict[str, str], text: str, extra_env: dict[str, str]) -> None:
    """A rejected secret or Apprise URL is not echoed in the error message."""
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), {**env, **extra_env})
    assert "12345" not in str(info.value)
    assert "hunter2pass" not in str(info.value)


def test_missing_explicit_file_is_an_error(tmp_path: Path, env: dict[str, str]) -> None:
    """A named config file that does not exist (path or SHIPTRACK_CONFIG) is an error, not the defaults."""
    with pytest.raises(ConfigError, match=r"nope\.toml .*does not exist"):
        load(tmp_path / "nope.toml", env)
    with pytest.raises(ConfigError, match=r"named by SHIPTRACK_CONFIG"):
        load(None, {**env, "SHIPTRACK_CONFIG": str(tmp_path / "nope.toml")})


def test_unreadable_files_are_errors(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable config file or api_key_file gives ConfigError naming it, not a traceback."""
    (tmp_path / "key").write_text("k")
    write(tmp_path, "", "locked.toml")
    write(tmp_path, '[provider]\napi_key_file = "key"\n', "uses-key.toml")
    denied = {tmp_path / "key", tmp_path / "locked.toml"}
    real_read_text, real_open = Path.read_text, Path.open

    def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        if self in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    def open_(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    real_os_open = os.open

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_os_open(path, flags, *args, **kwargs)

    # chmod 0 would not stop root, who runs these tests in CI containers; fail the reads directly.
    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(Path, "open", open_)
    monkeypatch.setattr(os, "open", os_open)  # secret files are read with os.open (O_NONBLOCK, fstat)
    with pytest.raises(ConfigError, match=r"provider\.api_key_file = \"key\" .*Permission denied"):
        load(tmp_path / "uses-key.toml", env)
    with pytest.raises(ConfigError, match=r"locked\.toml .*cannot be read: Permission denied"):
        load(tmp_path / "locked.toml", env)


def test_unreadable_file_kinds_are_errors(tmp_path: Path, env: dict[str, str]) -> None:
    """A directory given as the config file or as api_key_file is a ConfigError (works as root too)."""
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError, match=r"is a directory"):
        load(tmp_path / "dir", env)
    with pytest.raises(ConfigError, match=r"provider\.api_key_file .*cannot read"):
        load_text(tmp_path, env, '[provider]\napi_key_file = "dir"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8"):
        (tmp_path / "bin.toml").write_bytes(b"\xff\xfe[x]")
        load(tmp_path / "bin.toml", env)


def test_overlong_socket_path_is_rejected(env: dict[str, str]) -> None:
    """A socket path past the AF_UNIX limit fails at load time, not at bind time."""
    with pytest.raises(ConfigError, match=r"daemon\.socket .*107 bytes"):
        load(None, {**env, "SHIPTRACK_DAEMON__SOCKET": "/tmp/" + "x" * 120})


# --- render ---------------------------------------------------------------------------------------

SECRET_FILE = """
[provider]
api_key = "TEST_abcdef123456"
webhook_secret = "whsec_987654321"
rate_limit = "none"
[alerts]
urls = ["json://user:p4ssw0rd@hooks.example.com/alerts", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops"]
[sync]
force_schedule = "@daily"
[sync.cadence]
in_transit = "1h30m"
"""


def test_render_masks_secrets(tmp_path: Path, env: dict[str, str]) -> None:
    """render() shows no API key, webhook secret, URL password or Slack token."""
    text = render(load_text(tmp_path, env, SECRET_FILE))
    for secret in ("TEST_abcdef123456", "whsec_987654321", "p4ssw0rd", "TIiajkdnlazkcOXrIdevi7FQ", "A1BRTD4JD"):
        assert secret not in text
    assert 'api_key = "***"' in text
    assert "json://user:****@hooks.example.com/alerts" in text
    assert "slack://T...2/A...D/T...Q/#ops" in text


def test_render_round_trips_through_load(tmp_path: Path, env: dict[str, str]) -> None:
    """Loading render()'s output gives the same config, apart from the masked secrets and the source."""
    config = load_text(tmp_path, {**env, "SHIPTRACK_DAEMON__SOCKET_MODE": "0640"}, SECRET_FILE)
    again = load(write(tmp_path, render(config), "rendered.toml"), env)

    def unmasked(c: Config) -> Config:
        provider = dataclasses.replace(c.provider, api_key=Secret(""), webhook_secret=Secret(""))
        return dataclasses.replace(c, provider=provider, alerts=AlertsConfig(), source=None)

    assert unmasked(again) == unmasked(config)
    assert again.daemon.socket_mode == 0o640
    assert again.provider.api_key == Secret("***")


# --- durations, schedules, masking ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("14d", 14 * 86400),
        ("250ms", 0.25),
        ("2w", 14 * 86400),
        ("1.5h", 5400),
        ("45", 45),
        ("0.5", 0.5),
        (12, 12),
        ("10MIN", 600),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    """Durations with units, compound durations and bare numbers parse to seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 parsecs", "-5s", "1h-30m", "h", "5s5", True])
def test_parse_duration_rejects(text: str) -> None:
    """Anything that is not a non-negative duration raises ValueError."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90, "1m30s"), (5400, "1h30m"), (14 * 86400, "14d"), (0.25, "250ms"), (300, "5m"), (0, "0s"), (1.0005, "1.0005s")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    """format_duration gives the shortest text, and parse_duration reads it back exactly."""
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", Schedule("5m", interval_s=300)),
        (300, Schedule("5m", interval_s=300)),
        ("0 2 * * *", Schedule("0 2 * * *", cron="0 2 * * *")),
        ("@hourly", Schedule("@hourly", cron="0 * * * *")),
        ("@daily", Schedule("@daily", cron="0 0 * * *")),
        ("@weekly", Schedule("@weekly", cron="0 0 * * 0")),
        ("@monthly", Schedule("@monthly", cron="0 0 1 * *")),
        ("*/15  9-17 * * mon-fri", Schedule("*/15 9-17 * * mon-fri", cron="*/15 9-17 * * mon-fri")),
    ],
)
def test_parse_schedule(text: str | int, expected: Schedule) -> None:
    """Durations become intervals, five-field crons and @aliases become cron schedules."""
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [("*/5 * * * * *", "6 fields"), ("* * * *", "five-field"), ("0 25 * * *", "Bad hour"), ("0s", "positive")],
)
def test_parse_schedule_rejects(text: str, reason: str) -> None:
    """Six fields, wrong field counts, invalid crons (with cronsim's reason) and zero intervals are rejected."""
    with pytest.raises(ValueError, match=reason):
        parse_schedule(text)


T0 = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        (Schedule("10s", interval_s=10), T0, T0 + timedelta(seconds=10)),
        (parse_schedule("0 2 * * *"), T0, datetime(2026, 3, 29, 2, 0, tzinfo=UTC)),  # across midnight (and EU DST day)
        (parse_schedule("0 2 * * *"), datetime(2026, 3, 29, 2, 0, tzinfo=UTC), datetime(2026, 3, 30, 2, 0, tzinfo=UTC)),
        (parse_schedule("@monthly"), T0, datetime(2026, 4, 1, 0, 0, tzinfo=UTC)),
        (
            parse_schedule("*/15 * * * *"),
            datetime(2026, 3, 28, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
        ),
        (parse_schedule("0 2 * * *"), T0.replace(tzinfo=None), datetime(2026, 3, 29, 2, 0, tzinfo=UTC)),
    ],
)
def test_next_fire(schedule: Schedule, after: datetime, expected: datetime) -> None:
    """next_fire adds the interval, or asks cronsim for the next UTC fire strictly after *after*."""
    assert next_fire(schedule, after) == expected


def test_next_fire_converts_other_zones_to_utc() -> None:
    """A cron fires by UTC wall time even when *after* is in another zone."""
    from zoneinfo import ZoneInfo

    after = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # 01:30 UTC
    assert next_fire(parse_schedule("0 2 * * *"), after) == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("json://user:hunter2@hooks.example.com/alerts", "json://user:****@hooks.example.com/alerts"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#alerts", "slack://T...2/A...D/T...Q/#alerts"),
        (
            "mailtos://me%40x.com:app%20pw@smtp.x.com:587?mode=starttls&to=a@x.com",
            "mailtos://me%40x.com:****@smtp.x.com:587?mode=starttls&to=a@x.com",
        ),
        ("jsons://host/path?+X-Token=abc&:apikey=def&x=1", "jsons://host/path?+X-Token=****&:apikey=****&x=1"),
        ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12345", "tgram://123456789:A...w/12345"),
        ("mailto://127.0.0.1:8025?to=ops@example.com", "mailto://127.0.0.1:8025?to=ops@example.com"),
        ("not a url", "****"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    """mask_url hides passwords, token-like path parts and secret query values, and keeps the rest readable."""
    assert mask_url(url) == masked
