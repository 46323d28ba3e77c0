"""Shell completion and the man page, both generated from shiptrackctl's argparse tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ctl_tree import command_paths

from shiptrackd.ctl.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("shiptrackctl")
CTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shiptrackd.ctl"]
PATHS = command_paths(build_parser())


def _ctl(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CTL, *argv], capture_output=True, text=True, timeout=60)


def test_the_tree_has_every_command_we_document() -> None:
    """The walk finds the nested actions too, so the checks below cover the whole tree."""
    assert {"status", "shipments import", "loops pause", "silence add", "completion"} <= set(PATHS)


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_name_every_command(shell: str) -> None:
    """`shiptrackctl completion SHELL` prints a script that knows every command and nested action."""
    done = _ctl("completion", shell)
    assert done.returncode == 0, done.stderr
    for path in PATHS:
        # shtab names each command's completion function or array after its path, hyphens as
        # underscores: _shtab_shiptrackctl_shipments_add, _shtab_shiptrackctl_shipments_set_carrier
        assert f"_shtab_shiptrackctl_{path.replace(' ', '_').replace('-', '_')}" in done.stdout, path


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_and_actions() -> None:
    """Sourced into bash, the script completes `sta` to status/stats and lists `shipments` actions."""
    script = _ctl("completion", "bash").stdout
    probe = (
        'source /dev/stdin; COMP_WORDS=(shiptrackctl sta); COMP_CWORD=1; _shtab_shiptrackctl; echo "${COMPREPLY[*]}";'
        ' COMP_WORDS=(shiptrackctl shipments ""); COMP_CWORD=2; _shtab_shiptrackctl; echo "${COMPREPLY[*]}"'
    )
    done = subprocess.run(["bash", "-c", probe], input=script, capture_output=True, text=True, timeout=60)
    first, second = done.stdout.splitlines()
    assert first.split() == ["status", "stats"]
    assert set(second.split()) == {"add", "import", "list", "show", "remove", "retrack", "set-carrier"}


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_parses() -> None:
    """zsh reads the generated script without a syntax error."""
    script = _ctl("completion", "zsh").stdout
    done = subprocess.run(["zsh", "-n"], input=script, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_shell_we_do_not_support_is_a_usage_error() -> None:
    """`completion fish` exits 2 naming the choices."""
    done = _ctl("completion", "fish")
    assert done.returncode == 2 and "invalid choice: 'fish'" in done.stderr


def test_the_man_page_has_every_command_and_renders(tmp_path: Path) -> None:
    """packaging/make_docs.py writes shiptrackctl.1 with a .TH header and a section per command; man renders it."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "make_docs.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    roff = (tmp_path / "shiptrackctl.1").read_text()
    assert roff.startswith('.TH SHIPTRACKCTL "1"')
    for path in PATHS:
        # argparse-manpage heads each command's section with its path, a hyphen written as roff's \-
        roff_path = path.replace("-", "\\-")
        assert f"shiptrackctl {roff_path}'" in roff, path
    assert (tmp_path / "shiptrackctl.bash").read_text() == _ctl("completion", "bash").stdout
    if shutil.which("man") is None:
        pytest.skip("man is not installed: checked the roff source only")
    rendered = subprocess.run(
        ["man", "-P", "cat", "-l", str(tmp_path / "shiptrackctl.1")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert rendered.returncode == 0 and "warning" not in rendered.stderr, rendered.stderr
    text = " ".join(rendered.stdout.split())
    assert "SHIPTRACKCTL(1)" in text and "exit codes: 0 ok" in text
    for path in PATHS:
        assert f"COMMAND 'shiptrackctl {path}'" in text, path
