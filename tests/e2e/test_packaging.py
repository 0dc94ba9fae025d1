"""sshpod as operators install it: the Debian package in a fresh Debian container, and the sshpod
image. Both serve a real OpenSSH login against the real Docker engine (through its socket)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import harness as h

DEB_BUILD = h.REPO_ROOT / "packaging" / "deb" / "build.sh"
IMAGE_BUILD = h.REPO_ROOT / "images" / "sshpod" / "build.sh"
DOCKER_SOCKET = "/var/run/docker.sock"


def binary_version() -> tuple[str, str]:
    """(version, commit) as `sshpod --version` prints them."""
    out = subprocess.run([str(h.sshpod_bin()), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.fullmatch(r"sshpod (\S+) \(commit (\S+)\)\n", out)
    assert match, out
    return match.group(1), match.group(2)


def build_deb(out: Path) -> Path:
    result = subprocess.run([str(DEB_BUILD), str(h.sshpod_bin()), str(out)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def in_container(name: str, command: str, *, check: bool = True, user: str | None = None,
                 input: bytes | None = None) -> subprocess.CompletedProcess:
    args = ["exec", "-i"] + (["--user", user] if user else []) + [name, "sh", "-c", command]
    return h.docker(*args, check=check, input=input)


def served_fingerprint(port: int) -> str:
    """The SHA256 fingerprint of the host key a server on 127.0.0.1:port presents."""
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(port), "127.0.0.1"], capture_output=True,
                          text=True, timeout=30)
    assert scan.stdout.strip(), scan.stderr
    listed = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=scan.stdout, capture_output=True, text=True,
                            check=True).stdout
    return listed.split()[1]


def wait_for_ssh(port: int) -> None:
    """Wait until an SSH server answers on a published port (Docker's proxy accepts at once)."""
    def banner() -> bool:
        with h.connect_raw(port, timeout=5) as sock:
            return h.read_banner(sock, timeout=5).startswith(b"SSH-2.0-")
    h.wait_until(banner, h.STARTUP_TIMEOUT, f"an SSH banner on 127.0.0.1:{port}", interval=0.2)


def unit_settings(unit: str) -> dict[str, str]:
    """The [Service] settings of a systemd unit (last one wins, as systemd reads them)."""
    settings: dict[str, str] = {}
    section = ""
    for line in unit.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    return settings


def test_debian_package_installs_into_a_fresh_debian_and_serves_logins(scn):
    version, _ = binary_version()
    deb = build_deb(scn.tmp / "deb")
    assert deb.name == f"sshpod_{version}-1_{subprocess.check_output(['dpkg', '--print-architecture'], text=True).strip()}.deb"
    contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ["./usr/bin/sshpod", "./etc/sshpod/config.yaml", "./lib/systemd/system/sshpod.service",
                 "./usr/lib/tmpfiles.d/sshpod.conf", "./usr/share/man/man1/sshpod.1.gz",
                 "./usr/share/man/man1/sshpod-audit.1.gz", "./usr/share/bash-completion/completions/sshpod",
                 "./usr/share/zsh/vendor-completions/_sshpod", "./usr/share/fish/vendor_completions.d/sshpod.fish",
                 "./usr/share/doc/sshpod/copyright", "./usr/share/doc/sshpod/changelog.gz",
                 "./usr/share/sshpod/player/asciinema-player.min.js",
                 "./usr/share/sshpod/player/asciinema-player.css"]:
        assert f" {path}\n" in contents, f"{path} missing from the package:\n{contents}"

    # A fresh Debian with the engine's socket, whose group the package's user must join.
    port = h.free_port()
    name = f"sshpod-deb-{scn.run_id}"
    scn.finalizers.append(lambda: h.docker("rm", "-f", name, check=False))
    h.docker("run", "-d", "--name", name, "--label", f"{h.TEST_LABEL}={scn.run_id}-host",
             "-v", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}", "-v", f"{deb.parent}:/pkg:ro",
             "-p", f"127.0.0.1:{port}:2222", h.GUEST_IMAGE, "sleep", "infinity")
    socket_gid = os.stat(DOCKER_SOCKET).st_gid
    in_container(name, f"groupadd -g {socket_gid} docker")
    installed = in_container(name, f"dpkg -i /pkg/{deb.name}", check=False)
    assert installed.returncode == 0, installed.stdout.decode() + installed.stderr.decode()

    groups = in_container(name, "id -nG sshpod").stdout.decode().split()
    assert "docker" in groups and "sshpod" in groups, groups
    key_stat = in_container(name, "stat -c '%U %a' /etc/sshpod/ssh_host_ed25519_key").stdout.decode().split()
    assert key_stat == ["sshpod", "600"], key_stat
    fingerprint = in_container(name, "sshpod --config /etc/sshpod/config.yaml host-keys").stdout.decode().split()[1]
    assert in_container(name, "sshpod --version").stdout.decode() == subprocess.check_output(
        [str(h.sshpod_bin()), "--version"], text=True)

    # The operator's part: a user's key, and an image this machine has (no registry here).
    alice_key = scn.keys["alice"].with_suffix(".pub").read_bytes()
    in_container(name, "cat >/etc/sshpod/authorized_keys/alice", input=alice_key)
    config = in_container(name, "cat /etc/sshpod/config.yaml").stdout.decode()
    assert "image: debian:bookworm-slim" in config
    config = config.replace("image: debian:bookworm-slim",
                            f"image: {h.GUEST_IMAGE}\n      labels: {{{h.TEST_LABEL}: {scn.run_id}}}")
    in_container(name, "cat >/etc/sshpod/config.yaml", input=config.encode())
    checked = in_container(name, "sshpod --config /etc/sshpod/config.yaml check-config", check=False)
    assert checked.returncode == 0, checked.stderr.decode()

    # No systemd in the container: the unit's ExecStart, as the unit's user, with its environment.
    unit = unit_settings(in_container(name, "cat /lib/systemd/system/sshpod.service").stdout.decode())
    assert unit["User"] == "sshpod" and unit["ExecReload"].endswith("-HUP $MAINPID"), unit
    assert unit["NoNewPrivileges"] == "yes" and unit["ProtectSystem"] == "strict", unit
    start = f"exec env {unit['Environment']} runuser -u {unit['User']} -- {unit['ExecStart']}"
    service = subprocess.Popen(["docker", "exec", name, "sh", "-c", start], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)

    def stop_service() -> None:
        in_container(name, "pkill -TERM -x sshpod", check=False)
        try:
            service.wait(60)
        except subprocess.TimeoutExpired:
            service.kill()
    scn.finalizers.insert(0, stop_service)
    try:
        wait_for_ssh(port)
    except h.WaitTimeout:
        stop_service()
        raise AssertionError((service.stdout.read() if service.stdout else b"").decode("utf-8", "replace"))

    assert served_fingerprint(port) == fingerprint, "the server presents the key the package generated"
    result = scn.client(port).ssh("echo packaged; cat /etc/debian_version")
    assert result.returncode == 0 and result.stdout.startswith("packaged\n"), result
    h.wait_no_containers(scn.run_id)

    # Reinstalling keeps the operator's configuration and the host key.
    stop_service()
    again = in_container(name, f"dpkg -i /pkg/{deb.name}", check=False)
    assert again.returncode == 0, again.stderr.decode()
    assert h.GUEST_IMAGE in in_container(name, "cat /etc/sshpod/config.yaml").stdout.decode()
    assert in_container(name, "sshpod --config /etc/sshpod/config.yaml host-keys").stdout.decode().split()[1] \
        == fingerprint


def test_sshpod_image_runs_as_non_root_with_its_labels_and_serves_logins(scn):
    version, commit = binary_version()
    repository = f"sshpod-e2e-{scn.run_id}"
    scn.finalizers.append(lambda: h.docker("rmi", "-f", f"{repository}:{version}", f"{repository}:latest",
                                           check=False))
    built = subprocess.run([str(IMAGE_BUILD), str(h.sshpod_bin())], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "SSHPOD_IMAGE": repository})
    assert built.returncode == 0, built.stderr
    inspected = h.docker("image", "inspect", "--format", "{{json .Config}}", f"{repository}:latest").stdout
    config = json.loads(inspected)
    assert config["User"] == "65532:65532", config
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] == commit
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/bin/sshpod", "healthcheck"], config

    # Configuration and keys as mounted files; the engine's socket through its group.
    etc = scn.tmp / "etc-sshpod"
    (etc / "authorized_keys").mkdir(parents=True)
    (etc / "authorized_keys" / "alice").write_bytes(scn.keys["alice"].with_suffix(".pub").read_bytes())
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "ssh_host_ed25519_key")],
                   check=True)
    os.chown(etc / "ssh_host_ed25519_key", 65532, 65532)
    settings = scn.config({
        "ssh": {"listen": "0.0.0.0:2222", "hostkeys": ["/etc/sshpod/ssh_host_ed25519_key"]},
        "auth": {"publicKey": {"authorizedKeys": {"file": "/etc/sshpod/authorized_keys/%u"}},
                 "password": {"method": ""}},
        "docker": {"connection": {"streamDirectory": ""}},
    })
    (etc / "config.yaml").write_text(h.to_yaml(settings) + "\n")
    etc.chmod(0o755)
    port = h.free_port()
    name = f"sshpod-image-{scn.run_id}"
    scn.finalizers.insert(0, lambda: h.docker("stop", "-t", "30", name, check=False))
    scn.finalizers.append(lambda: h.docker("rm", "-f", name, check=False))
    h.docker("run", "-d", "--name", name, "--label", f"{h.TEST_LABEL}={scn.run_id}-host",
             "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
             "--group-add", str(os.stat(DOCKER_SOCKET).st_gid), "-v", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}",
             "-v", f"{etc}:/etc/sshpod:ro", "-p", f"127.0.0.1:{port}:2222", f"{repository}:latest")
    try:
        wait_for_ssh(port)
    except h.WaitTimeout:
        raise AssertionError(h.docker("logs", name, check=False).stderr.decode("utf-8", "replace"))
    result = scn.client(port).ssh("echo from-the-image")
    assert (result.returncode, result.stdout) == (0, "from-the-image\n"), result
    # The image's HEALTHCHECK (`sshpod healthcheck`: the SSH port, health.enable being off).
    def health() -> str:
        return h.docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.decode().strip()
    h.wait_until(lambda: health() == "healthy", 60, "Docker to report the container healthy")
    processes = h.docker("top", name, "-o", "pid,uid,comm").stdout.decode().splitlines()[1:]
    assert [line.split()[1:] for line in processes] == [["65532", "sshpod"]], processes
    h.wait_no_containers(scn.run_id)
    # sshpod stops on the engine's SIGTERM with its sessions' containers removed.
    h.docker("stop", "-t", "30", name)
    state = h.docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.decode().strip()
    assert state == "0", h.docker("logs", name, check=False).stderr.decode("utf-8", "replace")


def test_completions_and_manual_pages_follow_the_command_line(tmp_path):
    binary = str(h.sshpod_bin())
    bash = subprocess.run([binary, "completions", "bash"], capture_output=True, text=True, check=True).stdout
    syntax = subprocess.run(["bash", "-n"], input=bash, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    for command in ["check-config", "audit", "host-keys", "completions", "man"]:
        assert command in bash, f"{command} missing from the bash completions"
    # What bash asks when the user presses Tab after `sshpod audit `.
    completed = subprocess.run(
        ["bash", "-c", "source /dev/stdin; COMP_WORDS=(sshpod audit ''); COMP_CWORD=2; _sshpod sshpod '' audit; "
                       "printf '%s\\n' \"${COMPREPLY[@]}\""],
        input=bash, capture_output=True, text=True)
    assert {"ls", "show", "play", "export", "verify", "serve"} <= set(completed.stdout.split()), completed
    subprocess.run([binary, "man", "--dir", str(tmp_path)], check=True)
    pages = sorted(p.name for p in tmp_path.iterdir())
    assert {"sshpod.1", "sshpod-audit.1", "sshpod-audit-ls.1", "sshpod-check-config.1"} <= set(pages), pages
    assert (tmp_path / "sshpod.1").read_text().startswith(".ie")
    assert ".TH sshpod 1" in (tmp_path / "sshpod.1").read_text()
