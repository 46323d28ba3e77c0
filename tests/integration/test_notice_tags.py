"""
`[[notices]] to = ["tag:support"]` (issue 11, item 7): recipients named by an Apprise tag of `[alerts] config`.

The Apprise file is a real file; notices go through the real outbox and dispatcher to a real JSON
receiver on 127.0.0.1, one path per channel, so what arrived says which channels Apprise selected.
Configuration errors run `shiptrackd --check-config` and the start in-process, as the command does.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from alert_receivers import webhook
from conftest import daemon_config
from test_outbound_notices import until

from shiptrackd.__main__ import main
from shiptrackd.alerts.delivery import ChannelSet
from shiptrackd.clock import SystemClock
from shiptrackd.config import Config, Notice, Secret, load
from shiptrackd.daemon import Daemon
from shiptrackd.errors import ConfigError
from shiptrackd.log import redact
from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.outbound.dispatcher import Dispatcher
from shiptrackd.sandbox import Sandbox
from shiptrackd.store import FetchSuccess, Store
from shiptrackd.wire.names import EXIT_CONFIG, EXIT_OK

PASSWORD = "n0ticeS3cretPw"  # in the support channel's URL: a notice-only channel's URL is a secret too
DIRECT_PASSWORD = "d1rectPassw0rd"  # in the notice's own URL


def apprise_yaml(tmp: Path, port: int) -> Path:
    """Five channels: two carry `support` (one also `critical`), one `ops`, one `critical`, one untagged."""
    path = tmp / "apprise.yml"
    path.write_text(
        "version: 1\n"
        "urls:\n"
        f"  - json://desk:{PASSWORD}@127.0.0.1:{port}/support:\n"
        "      tag: support\n"
        f"  - json://127.0.0.1:{port}/support-critical:\n"
        "      tag: support, critical\n"
        f"  - json://127.0.0.1:{port}/ops:\n"
        "      tag: ops\n"
        f"  - json://127.0.0.1:{port}/critical:\n"
        "      tag: critical\n"
        f"  - json://127.0.0.1:{port}/untagged\n"
    )
    return path


def notices_toml(tmp: Path, port: int, apprise_file: Path) -> Path:
    path = tmp / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp}/state"\nsocket = "{tmp}/c.sock"\n'
        f'[alerts]\nconfig = "{apprise_file}"\n'
        '[[notices]]\nname = "support"\non = ["EX"]\n'
        f'to = ["tag:Support", "json://crm:{DIRECT_PASSWORD}@127.0.0.1:{port}/direct"]\n'
        '[[notices]]\nname = "ops"\non = ["DE"]\nto = ["tag:ops"]\n'
    )
    return path


@pytest.mark.anyio
async def test_a_tag_reaches_exactly_the_channels_carrying_it(tmp_path: Path) -> None:
    """An exception goes to both `support` channels and the notice's own URL; not to ops, critical or untagged."""
    async with webhook() as hook:
        config = load(notices_toml(tmp_path, hook.port, apprise_yaml(tmp_path, hook.port)), {})
        store = await Store.open(tmp_path / "s.db")
        dispatcher = Dispatcher(store, SystemClock(), config)
        now = datetime.now(UTC)
        added = await store.shipments.add_many([NewShipment("ups", "1ZTAG0001", reference="order-7")], now)
        event = TrackingEvent(now, "Damaged", "EX", "DM", city="Leeds")
        info = TrackingInfo("x", "EX", events=(event,))
        await store.shipments.apply(None, [FetchSuccess(added.added[0].id, info, now, "x")], now)
        async with anyio.create_task_group() as tg:
            await tg.start(dispatcher.run)
            await hook.wait_for(3)
            await until(lambda: dispatcher.attempts["delivered"] >= 1)  # every channel has answered by then
            tg.cancel_scope.cancel()
        await store.close()
    assert sorted(m["path"] for m in hook.items) == ["/direct", "/support", "/support-critical"]
    assert {m["json"]["title"] for m in hook.items} == {"1ZTAG0001 (ups): exception"}
    [support] = [m for m in hook.items if m["path"] == "/support"]
    assert support["headers"]["authorization"].startswith("Basic ")  # the file's credentials went with it
    assert DIRECT_PASSWORD not in redact(f"the answer echoed {DIRECT_PASSWORD}")  # a log secret, even alone


@pytest.mark.anyio
async def test_notice_only_channels_get_no_alert(tmp_path: Path) -> None:
    """Alerts (test notices included) skip channels tagged only for notices; their URLs are still secrets."""
    config = load(notices_toml(tmp_path, 9, apprise_yaml(tmp_path, 9)), {})
    channels = await ChannelSet.build((), config_file=config.alerts.config, notices=config.notices)
    routed = [c.name for c in channels.routed(["info"])]
    assert routed == [
        "console",
        "critical,support=json://127.0.0.1:9/support-critical",
        "critical=json://127.0.0.1:9/critical",
        "json://127.0.0.1:9/untagged",
    ]
    assert [c.name for c in channels.routed(["warning"])] == ["console", "json://127.0.0.1:9/untagged"]
    assert any(PASSWORD in url for url in channels.secrets())


def test_check_config_lists_notice_only_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--check-config` accepts the tags, marks the channels only notices use, and shows no password."""
    monkeypatch.chdir(tmp_path)
    path = notices_toml(tmp_path, 9, apprise_yaml(tmp_path, 9))
    assert main(["--check-config", "--config", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "#   support=json://desk:****@127.0.0.1:9/support   (notices only)" in out
    assert "#   ops=json://127.0.0.1:9/ops   (notices only)" in out
    assert "#   critical,support=json://127.0.0.1:9/support-critical\n" in out
    assert 'to = ["tag:Support", "json://crm:****@127.0.0.1:9/direct"]' in out  # a tag opens nothing: shown as written
    assert PASSWORD not in out


TEXT_FILE = "critical=json://127.0.0.1:9/c\nops=json://127.0.0.1:9/ops\njson://127.0.0.1:9/all\n"
OPS = '[[notices]]\nname = "ops"\non = ["DE"]\nto = ["tag:ops"]\n'


@pytest.mark.parametrize(
    ("name", "apprise_text", "notices", "named"),
    [
        (
            "a tag with no [alerts] config",
            None,
            'to = ["tag:support"]',
            ['notices[0].to[0] = "tag:support"', "alerts.config is not set"],
        ),
        (
            "a tag no channel carries (mixed list)",
            TEXT_FILE,
            'to = ["json://127.0.0.1:9/direct", "tag:support"]\n' + OPS,
            ['notices[0].to[1] = "tag:support"', "carries the tag support", "its tags: critical, ops"],
        ),
        (
            "a tag only an untagged channel could take",
            "json://127.0.0.1:9/all\n",
            'to = ["tag:support"]',
            ['notices[0].to[0] = "tag:support"', "its tags: none"],
        ),
        (
            "the second notice's tag",
            TEXT_FILE,
            'to = ["tag:ops"]\n[[notices]]\nname = "sales"\non = ["AT"]\nto = ["tag:sales"]',
            ['notices[1].to[0] = "tag:sales"', "carries the tag sales"],
        ),
        ("an empty tag", TEXT_FILE, 'to = ["tag:"]\n' + OPS, ['notices[0].to[0] = "tag:"', 'expected "tag:NAME"']),
        ("a tag with a space", TEXT_FILE, 'to = ["tag:sup port"]\n' + OPS, ['notices[0].to[0] = "tag:sup port"']),
        ("neither a URL nor a tag", TEXT_FILE, 'to = ["support"]\n' + OPS, ["notices[0].to[0]", "tag:NAME"]),
        (
            "a file channel tagged for no notice",
            "support=json://127.0.0.1:9/s\n",
            'to = ["json://127.0.0.1:9/direct"]',
            ["alerts.config", "tag(s) support", "tag:NAME"],
        ),
    ],
)
def test_a_bad_tag_recipient_exits_78_naming_the_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    apprise_text: str | None,
    notices: str,
    named: list[str],
) -> None:
    """`--check-config` and the start both exit 78 before anything else, naming the key and the tag."""
    alerts = ""
    if apprise_text is not None:
        (tmp_path / "apprise.txt").write_text(apprise_text)
        alerts = f'[alerts]\nconfig = "{tmp_path}/apprise.txt"\n'
    path = tmp_path / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\nsocket = "{tmp_path}/c.sock"\n{alerts}'
        f'[[notices]]\nname = "support"\non = ["EX"]\n{notices}\n'
    )
    for argv in (["--check-config", "--config", str(path)], ["--config", str(path)]):
        assert main(argv) == EXIT_CONFIG, name
        err = capsys.readouterr().err
        assert err.startswith("shiptrackd: configuration error: ") and err.count("\n") == 1, err
        for text in named:
            assert text in err, (name, err)
    assert not (tmp_path / "state" / "shiptrackd.db").exists()


@pytest.mark.anyio
async def test_a_reload_naming_a_tag_no_channel_carries_is_refused(short_tmp: Path, sandbox: Sandbox) -> None:
    """A reload whose notice names a tag the file lacks is rejected with the key; the running notices stay."""
    path = short_tmp / "apprise.txt"
    path.write_text("support=json://127.0.0.1:9/s\njson://127.0.0.1:9/all\n")
    base = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_ALERTS__CONFIG=str(path))

    def with_tag(tag: str) -> Config:
        return dataclasses.replace(base, notices=(Notice("desk", ("EX",), (Secret(f"tag:{tag}"),)),))

    configs = [with_tag("support"), with_tag("sales")]
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(configs[0], handle_signals=False, load_config=lambda: configs[-1]).run)
        with pytest.raises(ConfigError, match=r'notices\[0\]\.to\[0\] = "tag:sales": no channel .* carries'):
            await daemon.reload()
        running = daemon.config.notices
        daemon.stop()
    assert [s.get() for s in running[0].to] == ["tag:support"]
