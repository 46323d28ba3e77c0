"""The systemd unit and its companions: parse cleanly, score well, fit Debian 12's systemd 252."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import pytest
from installed import Install, installed_versions, locked_install, locked_versions

from shiptrackd.sandbox import Sandbox

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
UNIT = PACKAGING / "shiptrackd.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")


def script(name: str) -> str:
    """The installed console script *name* (the venv's), standing in for /usr/bin/<name>."""
    candidate = Path(sys.prefix) / "bin" / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed in this environment; run `uv sync` first")
    return found


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """A copy of the unit whose Exec lines point at real scripts, since verify checks they exist."""
    text = UNIT.read_text()
    text = text.replace("/usr/bin/shiptrackctl", script("shiptrackctl")).replace(
        "/usr/bin/shiptrackd", script("shiptrackd")
    )
    path = tmp_path / "shiptrackd.service"
    path.write_text(text)
    return path


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run([SYSTEMD_ANALYZE, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@needs_analyze
def test_unit_verifies_without_any_output(unit: Path) -> None:
    """`systemd-analyze verify` exits 0 and prints nothing (252 only warns on unknown keys, so output matters)."""
    result = analyze("verify", unit.name, cwd=unit.parent)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_unit_security_exposure_is_at_most_2(unit: Path) -> None:
    """`systemd-analyze security --offline=yes --threshold=20` passes and the exposure is <= 2.0."""
    result = analyze("security", "--offline=yes", "--no-pager", "--threshold=20", unit.name, cwd=unit.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout
    assert float(match[1]) <= 2.0


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_fits_systemd_252_and_the_contract() -> None:
    """No notify-reload/ReloadSignal (Debian 12); exit 78 is not restarted; the checklist's directives are set."""
    text = UNIT.read_text()
    assert "notify-reload" not in text
    assert "ReloadSignal" not in text
    d = directives(text)
    expected = {
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "WatchdogSec": ["30s"],
        "Restart": ["on-failure"],
        "RestartPreventExitStatus": ["78"],
        "User": ["shiptrack"],
        "Group": ["shiptrack"],
        "RuntimeDirectory": ["shiptrackd"],
        "StateDirectory": ["shiptrackd"],
        "ConfigurationDirectory": ["shiptrackd"],
        "ExecReload": ["/usr/bin/shiptrackctl reload"],
    }
    assert {key: d.get(key) for key in expected} == expected
    assert "DynamicUser" not in d and "PrivateUsers" not in d
    env = " ".join(d["Environment"])
    assert "SHIPTRACK_DAEMON__SOCKET=/run/shiptrackd/control.sock" in env
    assert "SHIPTRACK_DAEMON__STATE_DIR=/var/lib/shiptrackd" in env


def test_credentials_are_loaded_with_a_fallback() -> None:
    """Both credentials load from /etc/shiptrackd/credentials with a SetCredential= fallback: a missing file is fine."""
    d = directives(UNIT.read_text())
    loaded = dict(v.split(":", 1) for v in d["LoadCredential"])
    assert loaded == {
        "shipengine-api-key": "/etc/shiptrackd/credentials/shipengine-api-key",
        "apprise-urls": "/etc/shiptrackd/credentials/apprise-urls",
    }
    fallbacks = dict(v.split(":", 1) for v in d["SetCredential"])
    assert set(fallbacks) == set(loaded)
    # 252 rejects an empty value; the fallback must be something the loader skips (a comment line).
    assert all(value.startswith("#") for value in fallbacks.values())


def test_fallback_credential_is_ignored_by_the_loader(short_tmp: Path) -> None:
    """The SetCredential= fallback text, as the credential file, leaves the key and URLs unset."""
    from shiptrackd.config import Secret, load

    fallbacks = dict(v.split(":", 1) for v in directives(UNIT.read_text())["SetCredential"])
    for name, value in fallbacks.items():
        (short_tmp / name).write_text(value)
    config = load(None, {"CREDENTIALS_DIRECTORY": str(short_tmp), "HOME": str(short_tmp)})
    assert config.provider.api_key == Secret("")
    assert config.alerts.urls == ()


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_sysusers_creates_user_and_group(tmp_path: Path) -> None:
    """The sysusers.d file creates the shiptrack user and group (in a scratch root)."""
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(PACKAGING / "shiptrackd.sysusers")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^shiptrack:x:\d+:\d+:.*:/var/lib/shiptrackd:", (tmp_path / "etc/passwd").read_text(), re.M)
    assert re.search(r"^shiptrack:x:\d+:", (tmp_path / "etc/group").read_text(), re.M)


# --- packaging/README.md: references, and the locked install followed by a test -----------------

README = PACKAGING / "README.md"
REPO = PACKAGING.parent
# A repo-relative file name in the README's text (an installed path starts with "/" and is left out).
_REPO_FILE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.(?:md|toml|yml|yaml|service|sysusers|tmpfiles|py))\b")


def test_readme_names_only_files_that_exist() -> None:
    """Every file packaging/README.md names (relative to the repo or to packaging/) exists."""
    named = set(_REPO_FILE.findall(README.read_text()))
    assert "config.example.toml" in named and "prometheus/shiptrackd-rules.yml" in named
    missing = sorted(n for n in named if not (REPO / n).exists() and not (PACKAGING / n).exists())
    assert missing == []


def test_the_units_documentation_is_installed_by_the_readme() -> None:
    """Each `Documentation=` file:// path is a destination of an `install` line in the README, from a real file."""
    urls = " ".join(directives(UNIT.read_text())["Documentation"]).split()
    assert urls and all(url.startswith("file:///") for url in urls)
    installs = re.findall(r"^install -D -m 0644 (\S+)\s+(\S+)", README.read_text(), re.M)
    sources = {dest: src for src, dest in installs}
    for url in urls:
        path = url.removeprefix("file://")
        assert path in sources, f"{path} is not installed by packaging/README.md"
        assert (REPO / sources[path]).is_file()
    assert "operations.md" not in UNIT.read_text()


def test_locked_install_has_exactly_the_locks_versions() -> None:
    """README §1 (uv build, uv export --locked, pip-style --require-hashes --no-deps) installs uv.lock's versions."""
    install = locked_install()
    installed = installed_versions(install)
    locked = locked_versions(install)
    assert installed.pop("shiptrackd") == install.wheel.name.split("-")[1]
    assert {name: version for name, version in installed.items()} == {
        name: version for name, (version, _) in locked.items() if name in installed
    }
    assert [name for name, (_, everywhere) in locked.items() if everywhere and name not in installed] == []


def nobody_dirs(install: Install, nobody: pwd.struct_passwd) -> tuple[Path, Path, Path]:
    """A scratch dir, and in it the state and runtime dirs owned by nobody (as StateDirectory= would make them)."""
    work = Path(tempfile.mkdtemp(prefix="nobody-", dir=install.root))
    work.chmod(0o755)
    state, run = work / "state", work / "run"
    for directory in (state, run):
        directory.mkdir()
        os.chown(directory, nobody.pw_uid, nobody.pw_gid)
    return work, state, run


@pytest.mark.anyio
async def test_installed_daemon_runs_as_nobody_and_refuses_a_newer_store(sandbox: Sandbox) -> None:
    """The installed daemon, as user nobody, answers `shiptrackctl status` (also nobody); a newer store stops it."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("switching to the unprivileged user nobody needs root and setpriv (util-linux)")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this system has no user nobody")
    install = locked_install()
    work, state, run = nobody_dirs(install, nobody)
    notify_path = work / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify_path.chmod(0o666)
    notify.setblocking(False)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "NOTIFY_SOCKET": str(notify_path),
        "SHIPTRACK_DAEMON__STATE_DIR": str(state),
        "SHIPTRACK_DAEMON__SOCKET": str(run / "control.sock"),
        "SHIPTRACK_PROVIDER__BASE_URL": sandbox.base_url,
        "SHIPTRACK_PROVIDER__API_KEY": "TEST_sandbox_key",
        "SHIPTRACK_SYNC__SCHEDULE": "0 0 1 1 *",
        "SHIPTRACK_SYNC__FORCE_SCHEDULE": "0 0 1 1 *",
        "SHIPTRACK_HEALTH__SCHEDULE": "0 0 1 1 *",
    }
    as_nobody = [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]

    async def ready() -> None:
        with anyio.fail_after(30):
            while True:
                try:
                    if b"READY=1" in notify.recv(4096).split(b"\n"):
                        return
                except BlockingIOError:
                    await anyio.wait_readable(notify)

    try:
        with (work / "daemon.log").open("wb") as log:
            daemon = await anyio.open_process([*as_nobody, install.bin("shiptrackd")], env=env, stdout=log, stderr=log)
        async with daemon:
            await ready()
            ctl = [*as_nobody, install.bin("shiptrackctl"), "--socket", str(run / "control.sock"), "--json", "status"]
            answer = await anyio.run_process(ctl, env=env, check=False)
            proc_status = (await anyio.Path(f"/proc/{daemon.pid}/status").read_text()).splitlines()
            uids = next(line for line in proc_status if line.startswith("Uid:")).split()[1:]
            daemon.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await daemon.wait() == 0
        assert answer.returncode == 0, answer.stderr.decode()
        status = json.loads(answer.stdout)
        assert status["state"] == "running" and status["version"] == install.wheel.name.split("-")[1]
        assert status["pid"] == daemon.pid and uids == [str(nobody.pw_uid)] * 4  # real, effective, saved, fs
        assert (state / "shiptrackd.db").stat().st_uid == nobody.pw_uid

        # A later shiptrackd migrated the store (a version this one does not know): refuse, exit 1.
        with sqlite3.connect(state / "shiptrackd.db") as db:
            db.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', '2030-01-01T00:00:00Z')")
        refused = await anyio.run_process([*as_nobody, install.bin("shiptrackd")], env=env, check=False)
        assert refused.returncode == 1
        assert b"newer than this shiptrackd understands" in refused.stderr
    finally:
        notify.close()
