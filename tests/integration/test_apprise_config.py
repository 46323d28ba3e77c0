"""
`[alerts] config`: an Apprise YAML or TEXT file, read by Apprise's own loader, with its tags.

The files are real files in tmp_path; deliveries go to a real JSON webhook on 127.0.0.1.
`--check-config` runs in-process through `shiptrackd.__main__.main`, as the command does.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from alert_receivers import webhook
from conftest import daemon_config

from shiptrackd.__main__ import main
from shiptrackd.alerts.delivery import ChannelSet, load_apprise_config
from shiptrackd.api.client import ApiClient
from shiptrackd.daemon import Daemon
from shiptrackd.errors import ConfigError
from shiptrackd.sandbox import Sandbox
from shiptrackd.wire.names import EXIT_CONFIG, EXIT_OK

TOKEN = "s3cretT0kenValue42"  # a password in a channel URL: must never be printed


def yaml_file(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "apprise.yml"
    path.write_text(
        "version: 1\n"
        "urls:\n"
        f"  - json://pager:{TOKEN}@127.0.0.1:{port}/critical:\n"
        "      tag: critical\n"
        f"  - json://127.0.0.1:{port}/everything\n"
    )
    return path


def check_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, apprise_file: Path) -> None:
    monkeypatch.setenv("SHIPTRACK_DAEMON__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SHIPTRACK_ALERTS__CONFIG", str(apprise_file))


def test_check_config_lists_the_files_channels_with_their_tags_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--check-config` loads a YAML file through Apprise and lists each channel, its tag, the password masked."""
    check_config(monkeypatch, tmp_path, yaml_file(tmp_path, 9))
    assert main(["--check-config"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "critical=json://pager:****@127.0.0.1:9/critical" in out
    assert "#   json://127.0.0.1:9/everything" in out
    assert TOKEN not in out


@pytest.mark.parametrize(
    ("name", "content", "named"),
    [
        ("unknown scheme (TEXT)", "critical=json://127.0.0.1:9/ok\nnosuchscheme://host/path\n", "nosuchscheme://"),
        ("unknown scheme (YAML)", "urls:\n  - json://127.0.0.1:9/ok\n  - nosuchscheme://host/x\n", "nosuchscheme://"),
        ("broken YAML", "urls: [\n  - : :\n", "YAML"),
        ("no channel at all", "# nothing here\n", "at least one notification URL"),
        ("a tag that routes nothing", "devops=json://127.0.0.1:9/x\n", "tag(s) devops"),
    ],
)
def test_check_config_exits_78_naming_the_broken_channel(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str,
    named: str,
) -> None:
    """A file Apprise cannot fully use makes `--check-config` exit 78 with Apprise's reason and the channel."""
    path = tmp_path / ("apprise.yml" if "YAML" in name else "apprise.txt")
    path.write_text(content)
    check_config(monkeypatch, tmp_path, path)
    assert main(["--check-config"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "alerts.config" in err and str(path) in err and named in err, err


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A config file that does not exist is named in a ConfigError, not skipped silently as Apprise would."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_apprise_config(tmp_path / "absent.yml")


def test_a_broken_channel_never_shows_its_secret(tmp_path: Path) -> None:
    """Apprise's reason for a bad URL is repeated with the URL's token masked."""
    path = tmp_path / "apprise.txt"
    path.write_text(f"nosuchscheme://{TOKEN}@host/{TOKEN}\n")
    with pytest.raises(ConfigError) as caught:
        load_apprise_config(path)
    assert TOKEN not in str(caught.value) and "nosuchscheme://" in str(caught.value)


@pytest.mark.anyio
async def test_channels_from_the_file_are_routed_by_their_apprise_tags(tmp_path: Path) -> None:
    """A critical-tagged channel in the file gets critical alerts only; an untagged one gets every severity."""
    channels = await ChannelSet.build((), config_file=yaml_file(tmp_path, 9))

    def names(severities: list[str]) -> list[str]:
        return [c.name for c in channels.routed(severities)]

    assert names(["warning"]) == ["console", "json://127.0.0.1:9/everything"]
    assert names(["critical"]) == [
        "console",
        "critical=json://pager:****@127.0.0.1:9/critical",
        "json://127.0.0.1:9/everything",
    ]
    assert TOKEN in channels.secrets()[0]  # what the log filter is told to mask


@pytest.mark.anyio
async def test_the_daemon_delivers_through_a_text_config_file(short_tmp: Path, sandbox: Sandbox) -> None:
    """A daemon with `[alerts] config` pointing at a TEXT file sends `alert --test` to the file's receiver."""
    async with webhook() as hook:
        path = short_tmp / "apprise.txt"
        path.write_text(f"# ops\nwarning,critical=json://127.0.0.1:{hook.port}/from-file\n")
        config = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_ALERTS__CONFIG=str(path))
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, handle_signals=False).run)
            async with ApiClient(config.daemon.socket) as client:
                result = await client.alert_test()
            daemon.stop()
        assert result.delivered, result
        [arrived] = await hook.wait_for(1)
        assert arrived["path"] == "/from-file" and "[TEST]" in arrived["json"]["title"]


@pytest.mark.anyio
async def test_a_broken_file_stops_the_daemon_before_the_store_opens(short_tmp: Path, sandbox: Sandbox) -> None:
    """At start, a broken Apprise file is a ConfigError (exit 78) and no store file is created."""
    path = short_tmp / "apprise.txt"
    path.write_text("nosuchscheme://host/x\n")
    config = daemon_config(short_tmp / "state", sandbox.base_url, SHIPTRACK_ALERTS__CONFIG=str(path))
    with pytest.raises(ConfigError, match="nosuchscheme"):
        await Daemon(config, handle_signals=False).run()
    assert not (short_tmp / "state" / "shiptrackd.db").exists()


@pytest.mark.anyio
async def test_a_reload_with_a_broken_file_keeps_the_running_channels(short_tmp: Path, sandbox: Sandbox) -> None:
    """Breaking the Apprise file and reloading is refused; the channels loaded at start keep delivering."""
    async with webhook() as hook:
        path = short_tmp / "apprise.txt"
        path.write_text(f"json://127.0.0.1:{hook.port}/kept\n")
        config = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_ALERTS__CONFIG=str(path))
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, handle_signals=False, load_config=lambda: config).run)
            path.write_text("nosuchscheme://host/x\n")
            with pytest.raises(ConfigError, match="nosuchscheme"):
                await daemon.reload()
            async with ApiClient(config.daemon.socket) as client:
                result = await client.alert_test()
            daemon.stop()
        assert result.delivered
        [arrived] = await hook.wait_for(1)
        assert arrived["path"] == "/kept"
