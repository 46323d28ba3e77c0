"""
The container recipe (packaging/container/Dockerfile) and the Kubernetes example (packaging/kubernetes/).

No container engine or registry is reachable here, so no image is built. Instead:
- the manifests are validated offline against Kubernetes' schemas (kubernetes-validate, strict) and
  checked for the properties that matter (one writer, hardened pod, probe timeouts);
- the Dockerfile is parsed and checked for its structure (stages, user, volumes, healthcheck);
- the image's entrypoint runs under the image's constraints with bubblewrap: the README's locked
  install, a non-root uid, a read-only root, only /data, /run/shiptrackd and /tmp writable, the
  image's environment; the daemon starts, answers on its socket, and the HEALTHCHECK command passes.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from installed import Install, locked_install

from shiptrackd.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "packaging" / "container" / "Dockerfile"
KUBE = REPO / "packaging" / "kubernetes"
MANIFESTS = ["pvc.yaml", "configmap.yaml", "secret.example.yaml", "service.yaml", "deployment.yaml"]
BWRAP = shutil.which("bwrap")
IMAGE_UID = 10001

# --- the Dockerfile, parsed ---------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            out.append((keyword.upper(), args.strip()))
            pending = ""
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (a FROM starts one)."""
    out: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, args))
    return out


def image_env() -> dict[str, str]:
    """The final stage's ENV, as the container sees it."""
    env: dict[str, str] = {}
    for keyword, args in stages(DOCKERFILE.read_text())[-1]:
        if keyword == "ENV":
            for pair in shlex.split(args):
                key, value = pair.split("=", 1)
                env[key] = value
    return env


def final(keyword: str) -> list[str]:
    return [args for k, args in stages(DOCKERFILE.read_text())[-1] if k == keyword]


def test_dockerfile_is_multi_stage_and_installs_wheels_from_the_lock() -> None:
    """A build stage turns uv.lock into hashed wheels; the runtime stage installs only those, offline."""
    text = DOCKERFILE.read_text()
    all_stages = stages(text)
    assert len(all_stages) >= 3  # uv, build, runtime
    build = " ".join(args for k, args in all_stages[-2] if k == "RUN")
    assert "uv export --locked --no-dev" in build and "--require-hashes --no-deps" in build
    runtime_runs = " ".join(final("RUN"))
    assert "--no-index" in runtime_runs and "from=build" in runtime_runs
    assert "compileall" in runtime_runs  # the root is read-only at run time: precompile now
    for keyword, args in instructions(text):
        assert keyword != "ADD", "ADD fetches URLs and unpacks archives: COPY only"
        if keyword == "COPY" and "--from" not in args:
            for source in shlex.split(args)[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_dockerfile_runs_as_a_non_root_user_with_volumes_and_a_healthcheck() -> None:
    """A non-root USER, /data and the socket dir as volumes, no bytecode writes, a HEALTHCHECK with a timeout."""
    [user] = final("USER")
    assert user.split(":")[0] == str(IMAGE_UID)
    volumes = json.loads(final("VOLUME")[0])
    env = image_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert Path(env["SHIPTRACK_DAEMON__STATE_DIR"]) in map(Path, volumes)
    assert Path(env["SHIPTRACK_DAEMON__SOCKET"]).parent in map(Path, volumes)
    assert env["SHIPTRACK_SOCKET"] == env["SHIPTRACK_DAEMON__SOCKET"]  # shiptrackctl finds the daemon
    [health] = final("HEALTHCHECK")
    timeout = re.search(r"--timeout=(\d+)s", health)
    assert timeout and 3 <= int(timeout[1]) <= 5
    assert "shiptrackctl health" in health
    assert json.loads(final("ENTRYPOINT")[0]) == ["shiptrackd"]


# --- the Kubernetes example -----------------------------------------------------------------------


def manifest(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((KUBE / name).read_text())
    return document


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_validates_against_the_kubernetes_schema(name: str) -> None:
    """Each manifest passes kubernetes-validate's strict check (unknown fields rejected), offline."""
    import kubernetes_validate

    kubernetes_validate.validate(manifest(name), kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml names exactly the manifests in the folder."""
    assert sorted(manifest("kustomization.yaml")["resources"]) == sorted(MANIFESTS)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_offline() -> None:
    """`kubectl kustomize` builds the example without a cluster and yields one of each resource."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    rendered = subprocess.run([kubectl, "kustomize", str(KUBE)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(rendered.stdout))
    assert kinds == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service"]


def test_deployment_is_one_hardened_writer_with_probes() -> None:
    """One replica, Recreate, a hardened pod, PVC at /data, emptyDir for the socket and /tmp, 3-5 s probes."""
    spec = manifest("deployment.yaml")["spec"]
    assert (spec["replicas"], spec["strategy"]["type"]) == (1, "Recreate")
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    hardened = container["securityContext"]
    assert hardened["readOnlyRootFilesystem"] is True and hardened["allowPrivilegeEscalation"] is False
    assert hardened["capabilities"]["drop"] == ["ALL"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert 3 <= container[probe]["timeoutSeconds"] <= 5, probe
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    env = image_env()
    assert "persistentVolumeClaim" in mounts[env["SHIPTRACK_DAEMON__STATE_DIR"]]
    assert "emptyDir" in mounts[str(Path(env["SHIPTRACK_DAEMON__SOCKET"]).parent)]
    assert "emptyDir" in mounts["/tmp"]
    assert pod["terminationGracePeriodSeconds"] > 15  # [daemon] shutdown_grace's default


def test_configmap_and_secret_load_with_the_images_environment(tmp_path: Path) -> None:
    """The example's shiptrackd.toml and credentials load through the real loader as the container would."""
    from shiptrackd.config import load

    config_file = tmp_path / "shiptrackd.toml"
    config_file.write_text(manifest("configmap.yaml")["data"]["shiptrackd.toml"])
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in manifest("secret.example.yaml")["stringData"].items():
        (secrets / name).write_text(value)
    env = {**image_env(), "CREDENTIALS_DIRECTORY": str(secrets)}
    config = load(config_file, env)
    assert str(config.daemon.state_dir) == "/data" and config.daemon.metrics_listen == "0.0.0.0:9469"
    assert not config.provider.api_key and config.alerts.urls == ()  # the placeholders mean "not set"


# --- the entrypoint under the container's constraints (bubblewrap) ---------------------------------


@functools.cache
def bwrap_missing() -> str:
    """Why the bubblewrap sandbox cannot run here ("" when it can): not installed, or no user namespaces."""
    if BWRAP is None:
        return "bubblewrap is not installed (apt-get install bubblewrap): no container sandbox"
    probe = subprocess.run(
        [BWRAP, "--unshare-user", "--ro-bind", "/", "/", "true"], capture_output=True, text=True, timeout=30
    )
    return f"bwrap cannot create a user namespace here: {probe.stderr.strip()}" if probe.returncode else ""


needs_bwrap = pytest.mark.skipif(bool(bwrap_missing()), reason=bwrap_missing() or "bwrap works")


def sandbox_command(install: Install, data: Path, run: Path, extra_binds: list[str], env: dict[str, str]) -> list[str]:
    """bwrap arguments reproducing the pod: uid 10001, read-only root, writable /data, socket dir and /tmp only.

    The host's /usr stands in for the image's OS and the locked install for /opt/shiptrackd (bound at its
    own path too: its scripts' #! lines name it). The command is PID 1 of its namespace, as in a
    container. As root, bwrap runs as `nobody`, so nothing in the sandbox maps to a privileged host uid.
    """
    assert BWRAP is not None
    prefix = str(install.prefix)
    args = [BWRAP, "--unshare-user", "--uid", str(IMAGE_UID), "--gid", str(IMAGE_UID)]
    args += ["--unshare-pid", "--as-pid-1", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--cap-drop", "ALL"]
    args += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    args += [arg for d in ("bin", "lib", "lib64", "sbin") for arg in ("--symlink", f"usr/{d}", f"/{d}")]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    args += ["--ro-bind", prefix, prefix, "--ro-bind", prefix, "/opt/shiptrackd"]
    args += ["--bind", str(data), "/data", "--bind", str(run), "/run/shiptrackd", *extra_binds]
    args += ["--remount-ro", "/", "--chdir", "/data", "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        setpriv = shutil.which("setpriv")
        assert setpriv is not None
        return [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", *args, "--"]
    return [*args, "--"]


@pytest.fixture
def pod_dirs() -> Iterator[tuple[Path, Path, Path]]:
    """Host directories for the /data and /run/shiptrackd volumes and a notify socket, owned by the sandbox's user."""
    install = locked_install()
    work = Path(tempfile.mkdtemp(prefix="pod-", dir=install.root))
    work.chmod(0o755)
    dirs = [work / "data", work / "run", work / "notify"]
    for directory in dirs:
        directory.mkdir()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(directory, nobody.pw_uid, nobody.pw_gid)
    yield dirs[0], dirs[1], dirs[2]
    shutil.rmtree(work, ignore_errors=True)


@needs_bwrap
def test_the_sandbox_leaves_only_the_volumes_writable(pod_dirs: tuple[Path, Path, Path]) -> None:
    """Inside the sandbox the uid is 10001 with no capabilities, and only /data, the socket dir and /tmp take writes."""
    data, run, _ = pod_dirs
    probe = (
        "id -u; grep CapEff /proc/self/status;"
        " for d in / /etc /usr /opt/shiptrackd /opt/shiptrackd/bin /data /run/shiptrackd /tmp; do"
        ' touch "$d/.w" 2>/dev/null && echo "writable $d"; done'
    )
    command = [*sandbox_command(locked_install(), data, run, [], {"PATH": "/usr/bin"}), "sh", "-c", probe]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    assert out[0] == str(IMAGE_UID)
    assert out[1].split() == ["CapEff:", "0000000000000000"]
    assert sorted(line.split()[1] for line in out if line.startswith("writable")) == [
        "/data",
        "/run/shiptrackd",
        "/tmp",
    ]


@needs_bwrap
@pytest.mark.anyio
async def test_entrypoint_runs_under_the_containers_constraints(
    pod_dirs: tuple[Path, Path, Path], sandbox: Sandbox
) -> None:
    """The image's entrypoint and environment start the daemon in the sandbox; its socket and HEALTHCHECK answer.

    `shiptrackctl status` with neither --socket nor SHIPTRACK_SOCKET finds /run/shiptrackd/control.sock too.
    """
    data, run, notify_dir = pod_dirs
    install = locked_install()
    notify_path = notify_dir / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify_path.chmod(0o666)
    notify.setblocking(False)
    never = "0 0 1 1 *"
    env = {
        **image_env(),
        "NOTIFY_SOCKET": "/run/notify/notify.sock",
        "SHIPTRACK_PROVIDER__BASE_URL": sandbox.base_url,  # the host's loopback: the network is not unshared
        "SHIPTRACK_PROVIDER__API_KEY": "TEST_sandbox_key",
        "SHIPTRACK_SYNC__SCHEDULE": never,
        "SHIPTRACK_SYNC__FORCE_SCHEDULE": never,
        "SHIPTRACK_HEALTH__SCHEDULE": never,
    }
    base = sandbox_command(install, data, run, ["--bind", str(notify_dir), "/run/notify"], env)
    [entrypoint] = [json.loads(e) for e in final("ENTRYPOINT")]
    [health] = final("HEALTHCHECK")
    healthcheck = json.loads(health.split(" CMD ", 1)[1])
    log_path = notify_dir / "daemon.log"
    try:
        with log_path.open("wb") as log:
            daemon = await anyio.open_process([*base, *entrypoint], stdout=log, stderr=log)
        async with daemon:
            with anyio.fail_after(30):
                while True:
                    try:
                        if b"READY=1" in notify.recv(4096).split(b"\n"):
                            break
                    except BlockingIOError:
                        await anyio.wait_readable(notify)
            status = await anyio.run_process([*base, "shiptrackctl", "--json", "status"], check=False)
            checked = await anyio.run_process([*base, *healthcheck], check=False)
            # As after packaging/README.md: no --socket, no SHIPTRACK_SOCKET; the system socket is found.
            bare_env = {k: v for k, v in env.items() if k != "SHIPTRACK_SOCKET"}
            bare = sandbox_command(install, data, run, ["--bind", str(notify_dir), "/run/notify"], bare_env)
            found = await anyio.run_process([*bare, "shiptrackctl", "status"], check=False)
            # What `docker stop` does: SIGTERM to the container's PID 1 (bwrap itself forwards no signal).
            [pid_1] = (await anyio.Path(f"/proc/{daemon.pid}/task/{daemon.pid}/children").read_text()).split()
            os.kill(int(pid_1), signal.SIGTERM)
            with anyio.fail_after(20):
                stopped = await daemon.wait()
        assert status.returncode == 0, status.stderr.decode()
        answer = json.loads(status.stdout)
        assert answer["state"] == "running" and answer["store"]["path"] == "/data/shiptrackd.db"
        assert checked.returncode == 0, (checked.stdout, checked.stderr)
        assert found.returncode == 0 and b"running" in found.stdout, found.stderr.decode()
        assert stopped == 0, log_path.read_text()
        assert (data / "shiptrackd.db").exists() and not (run / "control.sock").exists()  # removed on stop
    finally:
        notify.close()
