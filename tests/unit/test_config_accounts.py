"""
[[providers]]: several accounts in one file. Valid entries load with the default first and the
carrier routes; a bad entry is a ConfigError (exit 78) naming that entry and what was expected.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shiptrackd.config import accounts, load, render, routes
from shiptrackd.errors import ConfigError

TWO = """
[[providers]]
name = "domestic"
kind = "shipengine"
api_key = "se-secret-key"
carriers = ["ups", "fedex"]
rate_limit = "200/min"

[[providers]]
name = "intl"
kind = "17track"
api_key = "17-secret-key"
base_url = "https://api.17track.net/track/v2.2"
rate_limit = "3/s"
concurrency = 2
carriers = ["usps", "china_post"]
default = true
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state")}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shiptrackd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_two_accounts_load_with_the_default_first_and_their_routes(tmp_path: Path, env: dict[str, str]) -> None:
    config = load(write(tmp_path, TWO), env)
    first, second = accounts(config)
    assert (first.name, first.kind, first.default, first.concurrency) == ("intl", "17track", True, 2)
    assert (second.name, second.kind, second.default) == ("domestic", "shipengine", False)
    assert first.rate_limit is not None and first.rate_limit.per_second == 3
    assert routes(config) == {"usps": "intl", "china_post": "intl", "ups": "domestic", "fedex": "domestic"}
    text = render(config)
    assert text.count("[[providers]]") == 2 and 'kind = "17track"' in text
    assert "17-secret-key" not in text and "se-secret-key" not in text  # secrets masked
    again = load(write(tmp_path, text.replace('"***"', '"k"')), env)
    assert [a.name for a in accounts(again)] == ["intl", "domestic"]


def test_without_entries_the_single_provider_table_is_the_one_account(tmp_path: Path, env: dict[str, str]) -> None:
    config = load(write(tmp_path, '[provider]\nname = "17track"\napi_key = "k"\n'), env)
    (only,) = accounts(config)
    assert (only.name, only.kind, only.default) == ("17track", "17track", True)
    assert routes(config) == {}
    seed = load(None, {**env, "TRACKING_API_PROVIDER": "shipengine", "SHIPENGINE_API_KEY": "abc"})
    (only,) = accounts(seed)
    assert (only.kind, only.api_key.get()) == ("shipengine", "abc")


def test_no_default_marked_makes_the_first_entry_the_default(tmp_path: Path, env: dict[str, str]) -> None:
    config = load(write(tmp_path, TWO.replace("default = true\n", "")), env)
    assert [a.name for a in accounts(config)] == ["domestic", "intl"]


ENTRY = '[[providers]]\nname = "{name}"\nkind = "{kind}"\napi_key = "k"\n'
BAD: list[tuple[str, str, str]] = [
    ("unknown kind", ENTRY.format(name="a", kind="fedex"), r'providers\[0\] \(\'a\'\)\.kind = "fedex".*"17track"'),
    ("no kind", '[[providers]]\nname = "a"\napi_key = "k"\n', r"providers\[0\] \('a'\)\.kind"),
    ("missing key", '[[providers]]\nname = "a"\nkind = "17track"\n', r"providers\[0\] \('a'\): api_key .* required"),
    ("bad name", ENTRY.format(name="Big Name", kind="17track"), r"providers\[0\].*\.name.*lowercase"),
    (
        "same name twice",
        ENTRY.format(name="a", kind="17track") + ENTRY.format(name="a", kind="shipengine"),
        r"providers\[1\] \('a'\)\.name.*providers\[0\] has the same name",
    ),
    (
        "overlapping carriers",
        ENTRY.format(name="a", kind="17track")
        + 'carriers = ["usps"]\n'
        + ENTRY.format(name="b", kind="shipengine")
        + 'carriers = ["ups", "usps"]\n',
        r"providers\[1\] \('b'\)\.carriers.*'usps' is already routed to providers\[0\] \('a'\)",
    ),
    (
        "two defaults",
        ENTRY.format(name="a", kind="17track")
        + "default = true\n"
        + ENTRY.format(name="b", kind="shipengine")
        + "default = true\n",
        r"providers\[1\] \('b'\)\.default.*providers\[0\] \('a'\) is the default already",
    ),
    ("unknown key", ENTRY.format(name="a", kind="17track") + "colour = 1\n", r"providers\[0\]\.colour"),
    ("bad rate", ENTRY.format(name="a", kind="17track") + 'rate_limit = "fast"\n', r"providers\[0\]\.rate_limit"),
    ("not tables", 'providers = "17track"\n', r"providers = .*expected \[\[providers\]\] tables"),
]


@pytest.mark.parametrize(("text", "pattern"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_entry_is_rejected_naming_it(tmp_path: Path, env: dict[str, str], text: str, pattern: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), env)
    message = str(info.value)
    assert "\n" not in message and re.search(pattern, message), message


def test_a_bad_entry_exits_78_at_once(tmp_path: Path) -> None:
    text = f'[daemon]\nsocket = "{tmp_path}/s.sock"\n' + BAD[0][1]
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    done = subprocess.run(
        [sys.executable, "-m", "shiptrackd", "--check-config", "--config", str(write(tmp_path, text))],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 78 and "providers[0] ('a').kind" in done.stderr, done.stderr
