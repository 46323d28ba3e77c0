"""Bad configurations, as a table: each one fails at load with exit 78 and names its key (issue 9, items 1-3, 6)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shiptrackd import config as cfg
from shiptrackd.config import load
from shiptrackd.errors import ConfigError
from shiptrackd.statedir import check_paths, prepare_paths

SHIPTRACKD = [sys.executable, "-m", "shiptrackd"]

# (id, TOML text, key pattern the message must name, further pattern: the range or the reason)
BAD_FILES: list[tuple[str, str, str, str]] = [
    # item 1: an unknown provider
    ("unknown provider", '[provider]\nname = "fedex"\n', r"provider\.name", r'"shipengine"'),
    ("empty provider", '[provider]\nname = ""\n', r"provider\.name", r"known provider"),
    ("provider not a string", "[provider]\nname = 3\n", r"provider\.name", r"known provider"),
    # item 2: numbers out of range
    ("concurrency huge", "[provider]\nconcurrency = 1000000\n", r"provider\.concurrency", r"from 1 to 256"),
    ("concurrency 2000", "[provider]\nconcurrency = 2000\n", r"provider\.concurrency", r"from 1 to 256"),
    ("concurrency zero", "[provider]\nconcurrency = 0\n", r"provider\.concurrency", r"from 1 to 256"),
    ("concurrency float", "[provider]\nconcurrency = 8.5\n", r"provider\.concurrency", r"an integer"),
    ("concurrency inf", "[provider]\nconcurrency = inf\n", r"provider\.concurrency", r"an integer"),
    ("retries huge", "[provider]\nretries = 1000\n", r"provider\.retries", r"from 0 to 20"),
    ("retries negative", "[provider]\nretries = -1\n", r"provider\.retries", r"from 0 to 20"),
    ("circuit breaker zero", "[provider]\ncircuit_breaker = 0\n", r"provider\.circuit_breaker", r"from 1 to 10000"),
    ("timeout huge", '[provider]\ntimeout = "2h"\n', r"provider\.timeout", r"at most 10m"),
    ("timeout zero", "[provider]\ntimeout = 0\n", r"provider\.timeout", r"positive duration"),
    ("timeout negative", '[provider]\ntimeout = "-5s"\n', r"provider\.timeout", r"positive duration"),
    ("timeout nan", "[provider]\ntimeout = nan\n", r"provider\.timeout", r"positive duration"),
    ("timeout 1e308", "[provider]\ntimeout = 1e308\n", r"provider\.timeout", r"at most 10m"),
    ("max retry after huge", '[provider]\nmax_retry_after = "30d"\n', r"provider\.max_retry_after", r"at most 1d"),
    ("rate limit absurd", '[provider]\nrate_limit = "1000000/s"\n', r"provider\.rate_limit", r"at most 10000/s"),
    ("rate limit period", '[provider]\nrate_limit = "10/30d"\n', r"provider\.rate_limit", r"at most 1d"),
    ("rate limit zero", '[provider]\nrate_limit = "0/s"\n', r"provider\.rate_limit", r"a rate like"),
    ("rate limit negative", '[provider]\nrate_limit = "-5/s"\n', r"provider\.rate_limit", r"a rate like"),
    ("rate limit number", "[provider]\nrate_limit = 10\n", r"provider\.rate_limit", r"a rate like"),
    ("shutdown grace 1e308", "[daemon]\nshutdown_grace = 1e308\n", r"daemon\.shutdown_grace", r"at most 1h"),
    ("shutdown grace huge", '[daemon]\nshutdown_grace = "2d"\n', r"daemon\.shutdown_grace", r"at most 1h"),
    ("shutdown grace inf", "[daemon]\nshutdown_grace = inf\n", r"daemon\.shutdown_grace", r"duration"),
    ("batch size huge", "[sync]\nbatch_size = 10000000\n", r"sync\.batch_size", r"from 1 to 100000"),
    ("batch size zero", "[sync]\nbatch_size = 0\n", r"sync\.batch_size", r"from 1 to 100000"),
    ("max runtime huge", '[sync]\nmax_runtime = "30d"\n', r"sync\.max_runtime", r"at most 7d"),
    ("schedule absurd", '[sync]\nschedule = "99999999999d"\n', r"sync\.schedule", r"at most"),
    ("schedule too slow", '[sync]\nschedule = "400d"\n', r"sync\.schedule", r"1s to 366d"),
    ("schedule too fast", '[sync]\nschedule = "10ms"\n', r"sync\.schedule", r"1s to 366d"),
    ("schedule number too fast", "[sync]\nschedule = 0.5\n", r"sync\.schedule", r"1s to 366d"),
    ("force schedule absurd", '[sync]\nforce_schedule = "1e308"\n', r"sync\.force_schedule", r"cron"),
    ("health schedule too slow", '[health]\nschedule = "1000d"\n', r"health\.schedule", r"1s to 366d"),
    ("cadence absurd", '[sync.cadence]\nin_transit = "99999999999d"\n', r"sync\.cadence\.in_transit", r"at most"),
    ("cadence 20 years", '[sync.cadence]\nexpire_after = "7300d"\n', r"sync\.cadence\.expire_after", r"at most 3650d"),
    ("cadence zero", '[sync.cadence]\naccepted = "0s"\n', r"sync\.cadence\.accepted", r"positive duration"),
    ("check timeout huge", '[health]\ncheck_timeout = "2h"\n', r"health\.check_timeout", r"at most 1h"),
    ("stale warning negative", "[health]\nstale_warning = -1\n", r"health\.stale_warning", r"from 0 to 1e\+09"),
    ("error rate over 100", "[health]\nerror_rate_critical = 150\n", r"health\.error_rate_critical", r"from 0 to 100"),
    ("error rate nan", "[health]\nerror_rate_warning = nan\n", r"health\.error_rate_warning", r"from 0 to 100"),
    ("loop failures zero", "[health]\nloop_failures_warning = 0\n", r"health\.loop_failures_warning", r"1 to 10000"),
    ("keep reports absurd", '[health]\nkeep_reports = "99999d"\n', r"health\.keep_reports", r"at most 3650d"),
    ("free disk over 100%", '[health]\nfree_disk_warning = "150%"\n', r"health\.free_disk_warning", r"at most 100"),
    ("free disk negative", '[health]\nfree_disk_critical = "-5%"\n', r"health\.free_disk_critical", r"free space"),
    ("repeat interval absurd", '[alerts]\nrepeat_interval = "1e9d"\n', r"alerts\.repeat_interval", r"duration"),
    ("for reports zero", "[alerts]\nfor_reports = 0\n", r"alerts\.for_reports", r"from 1 to 10000"),
    ("resolve after huge", "[alerts]\nresolve_after = 100000\n", r"alerts\.resolve_after", r"from 1 to 10000"),
    ("max per hour zero", "[alerts]\nmax_per_hour = 0\n", r"alerts\.max_per_hour", r"from 1 to 100000"),
    ("delivery attempts huge", "[alerts]\ndelivery_attempts = 1000\n", r"alerts\.delivery_attempts", r"1 to 100"),
    ("delivery timeout huge", '[alerts]\ndelivery_timeout = "1d"\n', r"alerts\.delivery_timeout", r"at most 1h"),
    # item 2: thresholds where warning must not exceed critical
    (
        "sync age inverted",
        '[health]\nsync_age_warning = "2h"\nsync_age_critical = "1h"\n',
        r"health\.sync_age_warning = \"2h\" is above health\.sync_age_critical = \"1h\"",
        r"warning threshold at most the critical",
    ),
    (
        "stale inverted",
        "[health]\nstale_warning = 200\nstale_critical = 100\n",
        r"health\.stale_warning = 200 is above health\.stale_critical = 100",
        r"warning threshold",
    ),
    (
        "error rate inverted",
        "[health]\nerror_rate_warning = 60\nerror_rate_critical = 50\n",
        r"health\.error_rate_warning .* health\.error_rate_critical",
        r"warning threshold",
    ),
    (
        "loop failures inverted",
        "[health]\nloop_failures_warning = 5\nloop_failures_critical = 3\n",
        r"health\.loop_failures_warning .* health\.loop_failures_critical",
        r"warning threshold",
    ),
    (
        "free disk inverted",
        '[health]\nfree_disk_warning = "5%"\nfree_disk_critical = "10%"\n',
        r"health\.free_disk_warning .* health\.free_disk_critical",
        r"at least the critical",
    ),
    (
        "free disk bytes inverted",
        '[health]\nfree_disk_warning = "1GiB"\nfree_disk_critical = "2GiB"\n',
        r"health\.free_disk_warning",
        r"at least the critical",
    ),
    (
        "backoff floor above ceiling",
        '[sync.cadence]\nfailure_backoff = "2h"\nfailure_backoff_max = "1h"\n',
        r"sync\.cadence\.failure_backoff = \"2h\" is above sync\.cadence\.failure_backoff_max",
        r"ceiling",
    ),
    # issue 13: when a silent cluster member is lost, and when it is forgotten
    ("member stale short", '[cluster]\nmember_stale = "1s"\n', r"cluster\.member_stale", r"from 3s to 1h"),
    ("member stale long", '[cluster]\nmember_stale = "2h"\n', r"cluster\.member_stale", r"from 3s to 1h"),
    ("member forget short", '[cluster]\nmember_forget = "30s"\n', r"cluster\.member_forget", r"from 1m to 30d"),
    (
        "member forgotten before long stale",
        '[cluster]\nmember_stale = "10m"\nmember_forget = "15m"\n',
        r"cluster\.member_forget = \"15m\" is below twice cluster\.member_stale = \"10m\"",
        r"well after it went stale",
    ),
    (
        "not-yet floor above ceiling",
        '[sync.cadence]\nnot_yet_in_system = "2d"\nnot_yet_in_system_max = "1d"\n',
        r"sync\.cadence\.not_yet_in_system = .* sync\.cadence\.not_yet_in_system_max",
        r"ceiling",
    ),
]

# (id, environment, key pattern, further pattern): the same checks apply to every layer.
BAD_ENVS: list[tuple[str, dict[str, str], str, str]] = [
    ("env unknown provider", {"SHIPTRACK_PROVIDER__NAME": "fedex"}, r"provider\.name", r"SHIPTRACK_PROVIDER__NAME"),
    ("seed alias unknown provider", {"TRACKING_API_PROVIDER": "ups"}, r"provider\.name", r"TRACKING_API_PROVIDER"),
    ("env concurrency", {"SHIPTRACK_PROVIDER__CONCURRENCY": "1000000"}, r"provider\.concurrency", r"from 1 to 256"),
    ("env nan", {"SHIPTRACK_HEALTH__ERROR_RATE_WARNING": "nan"}, r"health\.error_rate_warning", r"from 0 to 100"),
    ("env schedule", {"SHIPTRACK_SYNC__SCHEDULE": "99999999999d"}, r"sync\.schedule", r"at most"),
    ("env grace", {"SHIPTRACK_DAEMON__SHUTDOWN_GRACE": "1e308"}, r"daemon\.shutdown_grace", r"duration"),
]


@pytest.fixture(autouse=True)
def _no_system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host's real /etc/shiptrackd/shiptrackd.toml must not leak into these tests."""
    monkeypatch.setattr(cfg, "SYSTEM_CONFIG_PATH", tmp_path / "no-system-config.toml")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An explicit environment with XDG dirs in tmp_path."""
    return {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state")}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shiptrackd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _assert_names(message: str, key: str, detail: str) -> None:
    assert "\n" not in message, message
    assert re.search(key, message), f"{key!r} not in {message!r}"
    assert re.search(detail, message), f"{detail!r} not in {message!r}"


def test_the_table_is_at_least_fifty_configs() -> None:
    """Issue 9 asks for at least 50 bad configurations; the tables hold them."""
    assert len(BAD_FILES) + len(BAD_ENVS) >= 50


@pytest.mark.parametrize(("text", "key", "detail"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_file_is_rejected_naming_the_key(
    tmp_path: Path, env: dict[str, str], text: str, key: str, detail: str
) -> None:
    """Each bad value in the file is a ConfigError (exit 78) naming the key and the accepted range."""
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, text), env)
    _assert_names(str(info.value), key, detail)


@pytest.mark.parametrize(("extra", "key", "detail"), [c[1:] for c in BAD_ENVS], ids=[c[0] for c in BAD_ENVS])
def test_bad_environment_is_rejected_naming_the_key(
    env: dict[str, str], extra: dict[str, str], key: str, detail: str
) -> None:
    """Environment variables and seed aliases go through the same ranges as the file."""
    with pytest.raises(ConfigError) as info:
        load(None, {**env, **extra})
    _assert_names(str(info.value), key, detail)


def test_every_number_has_a_ceiling() -> None:
    """No integer, float or duration key is left without an upper bound (a new one must choose its range)."""
    unbounded = []
    for dotted, spec in cfg.all_keys():
        if spec.hint in (int, float) and not spec.duration and spec.maximum is None and dotted != "daemon.socket_mode":
            unbounded.append(dotted)
    assert unbounded == []


def test_provider_names_match_the_registry() -> None:
    """The names the config accepts are exactly the providers the daemon can build."""
    from shiptrackd.config.shapes import PROVIDER_NAMES
    from shiptrackd.providers import PROVIDERS

    assert set(PROVIDER_NAMES) == set(PROVIDERS)


# --- secret files ----------------------------------------------------------------------------------


def _api_key_file(tmp_path: Path, env: dict[str, str], target: Path | str) -> str:
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, f'[provider]\napi_key_file = "{target}"\n'), env)
    message = str(info.value)
    assert "provider.api_key_file" in message and "\n" not in message
    return message


@pytest.mark.timeout(10)
def test_a_fifo_as_secret_file_is_refused_without_blocking(tmp_path: Path, env: dict[str, str]) -> None:
    """A FIFO with no writer would block a plain open for ever; it is refused at once as not a regular file."""
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    assert "is a FIFO, not a regular file" in _api_key_file(tmp_path, env, fifo)


def test_dev_zero_as_secret_file_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """/dev/zero (5.96 GB RSS in 15 s before) is a character device, refused without reading it."""
    assert "is a character device, not a regular file" in _api_key_file(tmp_path, env, "/dev/zero")


def test_an_oversize_secret_file_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """A secret file over 64 KiB is refused and the error says the limit."""
    big = tmp_path / "big-key"
    big.write_bytes(b"k" * (64 * 1024 + 1))
    assert "larger than 64.0 KiB" in _api_key_file(tmp_path, env, big)


def test_a_secret_file_of_exactly_the_limit_is_read(tmp_path: Path, env: dict[str, str]) -> None:
    """The cap is inclusive: 64 KiB of key still loads."""
    key = tmp_path / "key"
    key.write_bytes(b"k" * (64 * 1024))
    config = load(_write(tmp_path, f'[provider]\napi_key_file = "{key}"\n'), env)
    assert len(config.provider.api_key.get()) == 64 * 1024


def test_a_directory_as_secret_file_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """A directory named as a secret file is refused as not a regular file."""
    (tmp_path / "keys").mkdir()
    assert "is a directory, not a regular file" in _api_key_file(tmp_path, env, tmp_path / "keys")


def test_env_file_variant_and_urls_file_use_the_same_rules(tmp_path: Path, env: dict[str, str]) -> None:
    """SHIPTRACK_*_FILE and urls_file are read by the same guarded reader."""
    with pytest.raises(ConfigError, match=r"provider\.api_key .*character device"):
        load(None, {**env, "SHIPTRACK_PROVIDER__API_KEY_FILE": "/dev/zero"})
    with pytest.raises(ConfigError, match=r"alerts\.urls_file .*character device"):
        load(_write(tmp_path, '[alerts]\nurls_file = "/dev/zero"\n'), env)


@pytest.mark.timeout(10)
def test_a_fifo_credential_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """A systemd credential that is a FIFO is refused too, without blocking."""
    creds = tmp_path / "creds"
    creds.mkdir()
    os.mkfifo(creds / "shipengine-api-key")
    with pytest.raises(ConfigError, match=r"credential shipengine-api-key: .*FIFO"):
        load(None, {**env, "CREDENTIALS_DIRECTORY": str(creds)})


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: os.mkfifo(p), "is a FIFO, not a regular file"),
        (lambda p: p.symlink_to("/dev/zero"), "is a character device, not a regular file"),
        (lambda p: p.write_bytes(b"#" * (1024 * 1024 + 1)), "larger than 1.0 MiB"),
    ],
    ids=["fifo", "dev-zero", "oversize"],
)
def test_the_config_file_itself_is_read_as_a_regular_file(
    tmp_path: Path, env: dict[str, str], make: Callable[[Path], object], reason: str
) -> None:
    """--config naming a FIFO, /dev/zero or a huge file is refused at once, not read for ever."""
    path = tmp_path / "shiptrackd.toml"
    make(path)
    with pytest.raises(ConfigError, match=f"config file {re.escape(str(path))} .*{reason}"):
        load(path, env)


# --- state_dir and the socket's directory ------------------------------------------------------------


def _paths_error(tmp_path: Path, env: dict[str, str], text: str) -> str:
    config = load(_write(tmp_path, text), env)
    with pytest.raises(ConfigError) as info:
        check_paths(config, env)
    return str(info.value)


def test_state_dir_under_a_regular_file_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """A state_dir below a regular file is one line naming daemon.state_dir and the file."""
    (tmp_path / "afile").write_text("x")
    message = _paths_error(tmp_path, env, f'[daemon]\nstate_dir = "{tmp_path}/afile/state"\n')
    assert "daemon.state_dir" in message and f"under {tmp_path}/afile" in message and "not a directory" in message


def test_state_dir_that_is_a_file_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """A state_dir that is itself a regular file is refused."""
    (tmp_path / "afile").write_text("x")
    message = _paths_error(tmp_path, env, f'[daemon]\nstate_dir = "{tmp_path}/afile"\n')
    assert "daemon.state_dir" in message and "is not a directory" in message


@pytest.mark.parametrize("where", ["/proc/shiptrackd", "/proc/self", "/sys/kernel/shiptrackd"])
def test_state_dir_on_a_pseudo_filesystem_is_refused(tmp_path: Path, env: dict[str, str], where: str) -> None:
    """A state_dir inside /proc or /sys is refused before anything tries to write there."""
    message = _paths_error(tmp_path, env, f'[daemon]\nstate_dir = "{where}"\nsocket = "{tmp_path}/s.sock"\n')
    assert "daemon.state_dir" in message and "pseudo-filesystem" in message


def test_unwritable_state_dir_is_refused(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing state_dir this user cannot write is refused by --check-config's checks."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:
        # Root writes through mode 0500, so no real directory is unwritable here; fake the answer.
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **kw: Path(p) != locked and real_access(p, m, **kw))
    message = _paths_error(tmp_path, env, f'[daemon]\nstate_dir = "{locked}"\n')
    assert "daemon.state_dir" in message and "not writable" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root creates directories anywhere")
def test_state_dir_that_cannot_be_created_fails_at_start(tmp_path: Path, env: dict[str, str]) -> None:
    """A missing state_dir this user cannot create passes the check (systemd may create it) but fails the start."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    config = load(_write(tmp_path, f'[daemon]\nstate_dir = "{locked}/state"\n'), env)
    check_paths(config, env)
    with pytest.raises(ConfigError, match=r"daemon\.state_dir = .*cannot create .*Permission denied"):
        prepare_paths(config, env)


def test_system_runtime_dir_may_be_missing_at_check_time(tmp_path: Path, env: dict[str, str]) -> None:
    """/run/shiptrackd is the unit's RuntimeDirectory: a check before the first start passes without it."""
    config = load(_write(tmp_path, '[daemon]\nsocket = "/run/shiptrackd/control.sock"\n'), env)
    check_paths(config, env)


def test_socket_in_an_arbitrary_missing_directory_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """A socket whose directory does not exist (and is not the daemon's own) is a config error, not mkdir -p."""
    message = _paths_error(tmp_path, env, f'[daemon]\nsocket = "{tmp_path}/no/such/dir/ctl.sock"\n')
    assert "daemon.socket" in message and "does not exist" in message
    assert not (tmp_path / "no").exists()


def test_own_runtime_dir_under_a_file_is_refused_naming_the_socket(tmp_path: Path, env: dict[str, str]) -> None:
    """The daemon's own runtime dir may be created, but not under a regular file; the error names the socket."""
    (tmp_path / "afile").write_text("x")
    runtime_env = {**env, "XDG_RUNTIME_DIR": str(tmp_path / "afile")}
    with pytest.raises(ConfigError, match=r"daemon\.socket's directory = .*afile.*not a directory"):
        check_paths(load(None, runtime_env), runtime_env)


def test_socket_in_the_state_dir_or_runtime_dir_may_be_created(tmp_path: Path, env: dict[str, str]) -> None:
    """The daemon's own directories pass even when they do not exist yet: it creates them."""
    config = load(None, env)  # socket in the state dir (no XDG_RUNTIME_DIR)
    check_paths(config, env)
    runtime_env = {**env, "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    check_paths(load(None, runtime_env), runtime_env)


# --- through the real command ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [  # ids of their own: the socket path holds the pid, and pytest-xdist's workers must collect the same names
        pytest.param('[provider]\nname = "fedex"\n', "provider.name", id="unknown-provider"),
        pytest.param("[provider]\nconcurrency = 1000000\n", "provider.concurrency", id="huge-concurrency"),
        pytest.param("[daemon]\nshutdown_grace = 1e308\n", "daemon.shutdown_grace", id="huge-grace"),
        pytest.param('[sync]\nschedule = "99999999999d"\n', "sync.schedule", id="huge-schedule"),
        pytest.param(
            '[health]\nsync_age_warning = "2h"\nsync_age_critical = "1h"\n',
            "health.sync_age_warning",
            id="inverted-thresholds",
        ),
        pytest.param('[cluster]\nmember_stale = "1s"\n', "cluster.member_stale", id="tiny-member-stale"),
        pytest.param('[provider]\napi_key_file = "/dev/zero"\n', "provider.api_key_file", id="dev-zero-secret"),
        pytest.param('[daemon]\nstate_dir = "/proc/shiptrackd"\n', "daemon.state_dir", id="state-dir-in-proc"),
        pytest.param(
            f'[daemon]\nsocket = "/tmp/shiptrackd-no-such-dir-{os.getpid()}/x/ctl.sock"\n',
            "daemon.socket",
            id="socket-dir-missing",
        ),
    ],
)
def test_check_config_and_start_exit_78(tmp_path: Path, text: str, key: str) -> None:
    """`shiptrackd --check-config` and `shiptrackd` both exit 78 with one line naming the key, no traceback."""
    path = _write(tmp_path, f'[daemon]\nsocket = "{tmp_path}/s.sock"\n' + text if "[daemon]" not in text else text)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    for extra in (["--check-config"], []):
        done = subprocess.run(
            [*SHIPTRACKD, "--config", str(path), *extra], env=env, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 78, done.stderr
        assert key in done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "state" / "shiptrackd" / "shiptrackd.db").exists()  # nothing started
