"""The systemd unit and its companions: parse cleanly, score well, fit Debian 12's systemd 252."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_fallback_credential_is_ignored_by_the_loader(tmp_path: Path) -> None:
    """The SetCredential= fallback text, as the credential file, leaves the key and URLs unset."""
    from shiptrackd.config import Secret, load

    fallbacks = dict(v.split(":", 1) for v in directives(UNIT.read_text())["SetCredential"])
    for name, value in fallbacks.items():
        (tmp_path / name).write_text(value)
    config = load(None, {"CREDENTIALS_DIRECTORY": str(tmp_path), "HOME": str(tmp_path)})
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
