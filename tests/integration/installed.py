"""
packaging/README.md §1 followed by a test: build the wheel, export the lock, install both into a fresh
prefix with `--require-hashes --no-deps`, offline from uv's cache. Shared by test_packaging.py (run as
`nobody`) and test_container.py (run under bubblewrap); built once per test session.

The prefix lives under a world-readable directory in /tmp and uses Debian's /usr/bin/python3 when it
exists (as the README does): pytest's tmp_path is 0700 and a pyenv Python under /root is unreadable
to `nobody`, either of which would fail the unprivileged run for reasons no real install has.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclass(frozen=True)
class Install:
    root: Path  # world-readable scratch directory holding the prefix and the build outputs
    prefix: Path  # the venv, as /opt/shiptrackd
    requirements: Path
    wheel: Path

    def bin(self, name: str) -> str:
        return str(self.prefix / "bin" / name)


def _run(*args: str, cwd: Path = REPO) -> str:
    env = {**os.environ, "UV_LINK_MODE": "copy", "UV_OFFLINE": "1", "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        if "offline" in output.lower() and ("not found" in output.lower() or "no solution" in output.lower()):
            pytest.skip(f"uv's cache lacks a file and the install is offline: {output.splitlines()[-1]}")
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{output}")
    return result.stdout


@functools.cache
def locked_install() -> Install:
    """The README's locked install, into a fresh prefix (built once; removed at exit)."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    root = Path(tempfile.mkdtemp(prefix="st-install-", dir="/tmp"))
    root.chmod(0o755)
    atexit.register(shutil.rmtree, root, True)
    dist = root / "dist"
    _run(uv, "build", "--wheel", "--out-dir", str(dist))
    [wheel] = dist.glob("shiptrackd-*.whl")
    requirements = root / "requirements.txt"
    _run(uv, "export", "--locked", "--no-dev", "--no-emit-project", "--quiet", "-o", str(requirements))
    prefix = root / "opt" / "shiptrackd"
    python = str(SYSTEM_PYTHON) if SYSTEM_PYTHON.exists() else sys.executable
    _run(python, "-m", "venv", "--without-pip", str(prefix))
    target = str(prefix / "bin" / "python")
    _run(uv, "pip", "install", "--python", target, "--require-hashes", "--no-deps", "-r", str(requirements))
    _run(uv, "pip", "install", "--python", target, "--no-deps", str(wheel))
    return Install(root, prefix, requirements, wheel)


def installed_versions(install: Install) -> dict[str, str]:
    """name -> version of every distribution in the prefix (uv pip list)."""
    uv = shutil.which("uv")
    assert uv is not None
    listed = json.loads(_run(uv, "pip", "list", "--format", "json", "--python", install.bin("python")))
    return {d["name"].lower().replace("_", "-"): d["version"] for d in listed}


def locked_versions(install: Install) -> dict[str, tuple[str, bool]]:
    """name -> (version, applies everywhere) of every requirement `uv export` wrote from uv.lock.

    A requirement with an environment marker (`colorama==0.4.6 ; sys_platform == 'win32'`) may rightly
    be absent from a Linux install; one without must be there.
    """
    out = {}
    for line in install.requirements.read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            spec, _, marker = line.rstrip(" \\").partition(";")
            name, _, version = spec.partition("==")
            out[name.strip().lower().replace("_", "-")] = (version.strip(), not marker.strip())
    return out
