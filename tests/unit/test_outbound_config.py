"""[[outbound]] and [api] tokens: good ones load, bad ones fail at load (exit 78) naming the key and the range."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shiptrackd.config import OUTBOUND_EVENTS, Config, load, render
from shiptrackd.errors import ConfigError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOTICE = '[[notices]]\nname = "support"\non = ["EX"]\nto = ["json://127.0.0.1:9/x"]\n'
GOOD = f'[[outbound]]\nname = "shop"\nurl = "https://shop.example/hooks"\nsecret = "{SECRET}"\n'


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "shiptrackd.toml"
    path.write_text(text)
    return load(path, {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")})


def test_an_endpoint_loads_with_the_documented_defaults(tmp_path: Path) -> None:
    """Defaults: every event, 15 s timeout, the Standard Webhooks schedule, enabled; render masks the secret."""
    config = _load(tmp_path, GOOD)
    [ep] = config.outbound
    assert ep.events == OUTBOUND_EVENTS and ep.timeout_s == 15.0 and ep.enabled
    assert ep.retry_schedule == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    text = render(config)
    assert "[[outbound]]" in text and SECRET not in text and 'secret = "***"' in text


def test_secret_file_and_token_file_are_read(tmp_path: Path) -> None:
    (tmp_path / "whsec").write_text(SECRET + "\n")
    (tmp_path / "token").write_text("a-long-random-token-0123456789\n")
    text = GOOD.replace(f'secret = "{SECRET}"', 'secret_file = "whsec"')
    text += '[api]\nlisten = "127.0.0.1:8790"\n[[api.tokens]]\nname = "shop"\nscope = "write"\ntoken_file = "token"\n'
    config = _load(tmp_path, text)
    assert config.outbound[0].secret.get() == SECRET
    assert config.api.tokens[0].token.get() == "a-long-random-token-0123456789"


BAD = [
    ("secret not whsec", GOOD.replace(SECRET, "hunter2hunter2hunter2"), r"outbound\[0\]\.secret", r"whsec_.*24 to 64"),
    ("secret too short", GOOD.replace(SECRET, "whsec_c2hvcnQ="), r"outbound\[0\]\.secret", r"24 to 64"),
    ("no secret", GOOD.replace(f'secret = "{SECRET}"\n', ""), r"outbound\[0\]\.secret", r"whsec_"),
    ("ftp url", GOOD.replace("https://shop.example/hooks", "ftp://shop.example/x"), r"outbound\[0\]\.url", "http"),
    ("no url", GOOD.replace('url = "https://shop.example/hooks"\n', ""), r"outbound\[0\]\.url is missing", "set it"),
    (
        "url at our own door",
        GOOD.replace("https://shop.example/hooks", "http://localhost:8790/v1/shipments")
        + '[api]\nlisten = "127.0.0.1:8790"\n[[api.tokens]]\nname = "a"\ntoken = "0123456789abcdef0123"\n',
        r"outbound\[0\]\.url",
        r"own listener api\.listen",
    ),
    (
        "url at our metrics",
        GOOD.replace("https://shop.example/hooks", "http://127.0.0.1:9469/x")
        + '[daemon]\nmetrics_listen = "127.0.0.1:9469"\n',
        r"outbound\[0\]\.url",
        r"daemon\.metrics_listen",
    ),
    ("unknown event", GOOD + 'events = ["shipment.lost"]\n', r"outbound\[0\]\.events\[0\]", "shipment.delivered"),
    ("bad status", GOOD + 'statuses = ["delivered"]\n', r"outbound\[0\]\.statuses\[0\]", "two-letter"),
    ("timeout huge", GOOD + 'timeout = "1h"\n', r"outbound\[0\]\.timeout", "at most 5m"),
    ("negative delay", GOOD + 'retry_schedule = ["0s", "-5s"]\n', r"outbound\[0\]\.retry_schedule\[1\]", "from 0s"),
    ("empty schedule", GOOD + "retry_schedule = []\n", r"outbound\[0\]\.retry_schedule", "at least one"),
    ("disable_after tiny", GOOD + 'disable_after = "1s"\n', r"outbound\[0\]\.disable_after", "from 1m"),
    ("twice", GOOD + GOOD, r"outbound\[1\]\.name", "used twice"),
    ("unknown key", GOOD + "colour = 1\n", r"outbound\[0\]\.colour", "unknown key"),
    ("not a table", 'outbound = "x"\n', "outbound", r"\[\[outbound\]\]"),
    ("listen without tokens", '[api]\nlisten = "127.0.0.1:8790"\n', r"api\.listen", "at least one token"),
    (
        "token file missing",
        '[[api.tokens]]\nname = "a"\ntoken_file = "/nonexistent/token"\n',
        r"api\.tokens\[0\]\.token_file",
        "cannot read",
    ),
    (
        "bad scope",
        '[[api.tokens]]\nname = "a"\nscope = "root"\ntoken = "0123456789abcdef0"\n',
        r"api\.tokens\[0\]\.scope",
        "admin",
    ),
    ("bad hash", '[[api.tokens]]\nname = "a"\ntoken_sha256 = "abc"\n', r"api\.tokens\[0\]\.token_sha256", "64 hex"),
    ("no token", '[[api.tokens]]\nname = "a"\n', r"api\.tokens\[0\]", "exactly one of token"),
    ("notice bad code", NOTICE.replace('"EX"', '"exception"'), r"notices\[0\]\.on\[0\]", "two-letter"),
    ("notice bad field", NOTICE + 'title = "{colour}"\n', r"notices\[0\]\.title", r"\{tracking_number\}"),
    ("notice quiet hours", NOTICE + 'quiet_hours = "late"\n', r"notices\[0\]\.quiet_hours", "HH:MM-HH:MM"),
    ("notice no url", NOTICE.replace('["json://127.0.0.1:9/x"]', "[]"), r"notices\[0\]\.to", "Apprise URL"),
    ("notice no on", NOTICE.replace('on = ["EX"]\n', ""), r"notices\[0\]\.on is missing", "set it"),
]


@pytest.mark.parametrize(("text", "key", "detail"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_outbound_config_names_the_key(tmp_path: Path, text: str, key: str, detail: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    message = str(info.value)
    assert re.search(key, message) and re.search(detail, message), message
    assert "hunter2" not in message


def test_a_bad_secret_exits_78_at_start(tmp_path: Path) -> None:
    """The daemon itself refuses it: exit 78, one line, the key named, the secret not shown."""
    path = tmp_path / "bad.toml"
    path.write_text(f'[daemon]\nsocket = "{tmp_path}/s.sock"\n' + GOOD.replace(SECRET, "whsec_hunter2"))
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    done = subprocess.run(
        [sys.executable, "-m", "shiptrackd", "--config", str(path)], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 78 and "outbound[0].secret" in done.stderr and "hunter2" not in done.stderr
