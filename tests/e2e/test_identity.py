"""Your own identity (`identity`): a login as `alice` runs as `alice` in its container, with the
uid and gid sshpod chose, sshd's environment, a login shell in the home, `scp`/`sftp` relative
paths in the home, `sudo` when it is on, and a per-user hostname; on stock images with nothing
baked in, on Docker and on kube-sim."""

from __future__ import annotations

import base64
import re
import sys
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

import harness as h

# FNV-1a of "alice" into the default range 10000..59999 (see `uid_for` in sshpod-core).
ALICE_UID = 26183

IDENTITY = {"identity": {"enable": True}}

# What every check prints: one `key=value` per line, from tools the image has. On the busybox
# image `whoami` and `id` are busybox applets without links, so they are called through it.
PROBE = (
    'w=$(whoami 2>/dev/null || busybox whoami); i=$(id 2>/dev/null || busybox id); '
    'echo "whoami=$w"; echo "id=$i"; echo "USER=$USER"; echo "LOGNAME=$LOGNAME"; '
    'echo "HOME=$HOME"; echo "SHELL=$SHELL"; echo "PATH=$PATH"; echo "pwd=$(pwd)"; '
    'echo "SSH_TTY=${SSH_TTY-unset}"; echo "SSH_CONNECTION=$SSH_CONNECTION"; '
    'while read -r k v; do case $k in CapEff:|CapPrm:) echo "${k%:}=$v";; esac; done </proc/self/status'
)


# Runs a tool from the image, or busybox's applet where the image has no link to it.
TOOLS = 'b() { if command -v "$1" >/dev/null; then "$@"; else busybox "$@"; fi; };'


def parse(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.replace("\r", "").splitlines() if "=" in line)


@pytest.fixture(scope="module")
def bare_passwd_image() -> str:
    """The Debian guest with /etc/passwd and /etc/group cut down to root, no /home, and sudo
    installed from its Debian package: an image that knows no user but root."""
    tag = f"sshpod-test-bare-passwd:{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="sshpod-bare.") as tmp:
        download = subprocess.run(["apt-get", "download", "sudo"], cwd=tmp, capture_output=True, text=True,
                                  timeout=120)
        debs = list(Path(tmp).glob("sudo_*.deb"))
        assert debs, f"cannot download Debian's sudo package: {download.stderr}"
        (Path(tmp) / "Dockerfile").write_text(
            f"FROM {h.GUEST_IMAGE}\n"
            f"COPY {debs[0].name} /tmp/sudo.deb\n"
            "RUN dpkg --force-depends -i /tmp/sudo.deb >/dev/null && rm /tmp/sudo.deb"
            " && echo 'root:x:0:0:root:/root:/bin/bash' >/etc/passwd && echo 'root:x:0:' >/etc/group"
            " && echo 'root:*:19000:0:99999:7:::' >/etc/shadow && rm -rf /home\n"
        )
        h.docker("build", "-q", "-t", tag, tmp, timeout=300)
    yield tag
    h.docker("rmi", "-f", tag, check=False)


def image_config(image: str, extra: dict | None = None) -> dict:
    return h.deep_merge({"docker": {"execution": {"container": {"image": image}}}, **IDENTITY}, extra or {})


def check_identity(client: h.Client, shell: str) -> None:
    """whoami, id, the environment and the working directory, without and with a terminal."""
    plain = client.ssh(PROBE)
    assert plain.returncode == 0, plain
    got = parse(plain.stdout)
    assert got["whoami"] == "alice", got
    assert re.match(rf"uid={ALICE_UID}\(alice\) gid={ALICE_UID}\(alice\)", got["id"]), got
    for key, value in {"USER": "alice", "LOGNAME": "alice", "HOME": "/home/alice", "SHELL": shell,
                       "pwd": "/home/alice", "SSH_TTY": "unset"}.items():
        assert got[key] == value, (key, got)
    assert "/usr/bin" in got["PATH"].split(":"), got
    # The user's processes hold no capabilities, whatever the setup needed.
    assert int(got["CapEff"], 16) == 0 and int(got["CapPrm"], 16) == 0, got
    assert got["SSH_CONNECTION"].startswith("127.0.0.1 "), got

    tty = client.ssh(PROBE, opts=["-tt"])
    assert tty.returncode == 0, tty
    got = parse(tty.stdout)
    assert got["whoami"] == "alice" and got["pwd"] == "/home/alice", got
    assert re.fullmatch(r"/dev/pts/\d+", got["SSH_TTY"]), got

    # The home exists and belongs to the user; files made there are theirs.
    owner = client.ssh(f"{TOOLS} b touch mine && b stat -c %u:%g mine")
    assert (owner.returncode, owner.stdout) == (0, f"{ALICE_UID}:{ALICE_UID}\n"), owner


def check_login_shell(client: h.Client, shell: str) -> None:
    """`ssh host` with a terminal: a login shell of the user's, in the home."""
    marker = "READY"
    script = f'echo "{marker} $0 $(pwd)"; exit 3\n'
    result = client.ssh(opts=["-tt"], input=script)
    assert result.returncode == 3, result
    text = result.stdout.replace("\r", "")
    assert re.search(rf"{marker} -?{re.escape(shell)} /home/alice", text) or \
        re.search(rf"{marker} -?{re.escape(Path(shell).name)} /home/alice", text), text


def test_identity_on_the_debian_guest(scn):
    gw = scn.start(image_config(h.GUEST_IMAGE))
    client = scn.client(gw)
    check_identity(client, "/bin/bash")
    check_login_shell(client, "/bin/bash")
    # The user's processes open their FIFOs (streams bypass the engine) like root's do.
    assert "does not see this directory" not in gw.log and "could not open its FIFOs" not in gw.log, gw.log


def test_identity_on_a_busybox_only_image(scn, sh_only_image):
    gw = scn.start(image_config(sh_only_image))
    client = scn.client(gw)
    check_identity(client, "/bin/sh")
    check_login_shell(client, "/bin/sh")


def test_identity_on_an_image_that_knows_only_root(scn, bare_passwd_image):
    gw = scn.start(image_config(bare_passwd_image))
    client = scn.client(gw)
    check_identity(client, "/bin/bash")
    # sudo is off: the user is not root and cannot become root.
    refused = client.ssh("sudo -n id -u")
    assert refused.returncode != 0, refused


def test_identity_off_keeps_the_image_user(scn):
    gw = scn.start()
    result = scn.client(gw).ssh('id -u; echo "USER=${USER-unset}"; pwd')
    assert (result.returncode, result.stdout) == (0, "0\nUSER=unset\n/\n"), result


def test_a_fixed_uid_gid_shell_and_home(scn):
    gw = scn.start(image_config(h.GUEST_IMAGE, {"identity": {
        "uid": 4242, "gid": 100, "home": "/srv/people/%u", "shell": "/bin/sh"}}))
    result = scn.client(gw).ssh('id; echo "HOME=$HOME SHELL=$SHELL"; pwd')
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].startswith("uid=4242(alice) gid=100(users)"), result
    assert lines[1:] == ["HOME=/srv/people/alice SHELL=/bin/sh", "/srv/people/alice"], result


def test_scp_and_sftp_relative_paths_land_in_the_home(scn, tmp_path):
    gw = scn.start(image_config(h.GUEST_IMAGE))
    client = scn.client(gw)
    cm = h.control_options(scn.control_path(client))
    local = tmp_path / "notes.txt"
    local.write_text("hello home\n")
    copied = client.run_args(client.scp_args(str(local), client.remote(""), opts=cm))
    assert copied.returncode == 0, copied
    put = client.run_args(client.sftp_args(opts=cm), input=f"put {local} from-sftp.txt\nmkdir dir\n")
    assert put.returncode == 0, put
    listing = client.ssh("cd /home/alice && ls -n notes.txt from-sftp.txt && cat notes.txt && test -d dir",
                         opts=cm)
    assert listing.returncode == 0, listing
    assert listing.stdout.count(f" {ALICE_UID} {ALICE_UID} ") == 2, listing
    assert "hello home" in listing.stdout, listing
    got = client.run_args(client.sftp_args(opts=cm), input="pwd\n")
    assert "Remote working directory: /home/alice" in got.stdout, got


def test_sudo_gives_root_in_the_users_own_container_only_when_on(scn, bare_passwd_image):
    gw = scn.start(image_config(bare_passwd_image, {"identity": {"sudo": True}}))
    client = scn.client(gw)
    result = client.ssh("id -un; sudo -n id -u; sudo -n touch /etc/made-by-root && echo wrote")
    assert (result.returncode, result.stdout) == (0, "alice\n0\nwrote\n"), result
    # Root inside an unprivileged container: no capability to change the hostname.
    denied = client.ssh("sudo -n sh -c 'echo other >/proc/sys/kernel/hostname'")
    assert denied.returncode != 0, denied


def test_a_per_user_hostname(scn):
    gw = scn.start(image_config(h.GUEST_IMAGE, {"identity": {"hostname": "%u-sshpod"}}))
    result = scn.client(gw).ssh("cat /proc/sys/kernel/hostname")
    assert (result.returncode, result.stdout) == (0, "alice-sshpod\n"), result


@pytest.fixture(scope="module")
def nobody_image() -> str:
    """The Debian guest whose configured user is `nobody`: sshpod must not depend on the
    image's user being root to signal the user's processes."""
    tag = f"sshpod-test-nobody:{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="sshpod-nobody.") as tmp:
        (Path(tmp) / "Dockerfile").write_text(f"FROM {h.GUEST_IMAGE}\nUSER nobody\n")
        h.docker("build", "-q", "-t", tag, tmp, timeout=300)
    yield tag
    h.docker("rmi", "-f", tag, check=False)


def test_signals_reach_the_users_process_whatever_the_images_user(scn, nobody_image):
    import asyncio

    import asyncssh

    gw = scn.start(image_config(nobody_image))

    async def scenario():
        async with asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                                    known_hosts=None, agent_path=None, config=None,
                                    preferred_auth="publickey") as conn:
            proc = await conn.create_process(
                "trap 'echo got TERM; exit 7' TERM; echo ready $(id -un); while :; do sleep 0.1; done")
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line == "ready alice\n", line
            proc.send_signal("TERM")
            output = await asyncio.wait_for(proc.stdout.read(), 60)
            result = await asyncio.wait_for(proc.wait(), 60)
            return output, result

    output, result = asyncio.run(asyncio.wait_for(scenario(), 100))
    assert output == "got TERM\n" and result.exit_status == 7, (output, result)


def test_session_mode_refuses_identity_with_a_message(scn):
    gw = scn.start(image_config(h.GUEST_IMAGE, {"docker": {"execution": {"mode": "session"}}}))
    result = scn.client(gw).ssh("id")
    assert result.returncode != 0, result
    assert "cannot set up your user `alice` in your container" in result.stderr, result


def test_a_login_name_that_cannot_be_a_user_is_refused_with_a_clear_message(scn, keys):
    # Names the built-in authentication takes but `/etc/passwd` must not: all digits (a uid to
    # `id` and `chown`) and longer than 32 bytes. (`:` and line breaks never get this far with
    # built-in authentication; the unit tests of `sshpod_core::identity` cover them.)
    gw = scn.start(image_config(h.GUEST_IMAGE))
    for hostile in ("12345", "n" * 33):
        shutil.copy(keys["alice"].with_suffix(".pub"), scn.tmp / "authorized_keys" / hostile)
        result = scn.client(gw, user=hostile).ssh("id")
        assert result.returncode != 0, result
        assert f"the login name `{hostile}` cannot be a user in your container" in result.stderr, result
    assert not h.containers(scn.run_id), "no container is made for a refused name"


# Kubernetes (kube-sim): the exec API has no user, so the pod's console starts as root with a
# few capabilities and every process switches to the user (setpriv, or busybox su).

from test_kubernetes import kube, ks, kube_config, pods  # noqa: E402,F401  (fixtures)


def kube_image(image: str, extra: dict | None = None) -> dict:
    pod = {"kubernetes": {"pod": {"spec": {"containers": [{"name": "shell", "image": image}]}}}}
    return h.deep_merge(h.deep_merge(pod, IDENTITY), extra or {})


def test_kubernetes_identity_on_the_debian_guest_with_a_hostname(kube, scn, ks):
    gw = kube(kube_image(h.GUEST_IMAGE, {"identity": {"hostname": "%u-sshpod"}}))
    client = scn.client(gw, )
    cm = h.control_options(scn.control_path(client))
    name = client.ssh("cat /proc/sys/kernel/hostname", opts=cm)
    assert (name.returncode, name.stdout) == (0, "alice-sshpod\n"), name
    (pod,) = pods(ks)
    assert pod["spec"]["hostname"] == "alice-sshpod", pod["spec"]
    check_identity(client, "/bin/bash")
    check_login_shell(client, "/bin/bash")


def test_kubernetes_identity_on_a_busybox_only_image(kube, scn, sh_only_image):
    gw = kube(kube_image(sh_only_image))
    client = scn.client(gw)
    check_identity(client, "/bin/sh")
    check_login_shell(client, "/bin/sh")


def test_kubernetes_identity_on_an_image_that_knows_only_root_and_sudo(kube, scn, bare_passwd_image):
    gw = kube(kube_image(bare_passwd_image))
    client = scn.client(gw)
    check_identity(client, "/bin/bash")
    refused = client.ssh("sudo -n id -u")
    assert refused.returncode != 0, refused

    gw = kube(kube_image(bare_passwd_image, {"identity": {"sudo": True}}))
    result = scn.client(gw).ssh("id -un; sudo -n id -u")
    assert (result.returncode, result.stdout) == (0, "alice\n0\n"), result


def test_kubernetes_scp_and_sftp_relative_paths_land_in_the_home(kube, scn, tmp_path):
    gw = kube(kube_image(h.GUEST_IMAGE))
    client = scn.client(gw)
    cm = h.control_options(scn.control_path(client))
    local = tmp_path / "notes.txt"
    local.write_text("hello home\n")
    copied = client.run_args(client.scp_args(str(local), client.remote(""), opts=cm))
    assert copied.returncode == 0, copied
    put = client.run_args(client.sftp_args(opts=cm), input=f"put {local} from-sftp.txt\n")
    assert put.returncode == 0, put
    listing = client.ssh("ls -n /home/alice/notes.txt /home/alice/from-sftp.txt", opts=cm)
    assert listing.returncode == 0, listing
    assert listing.stdout.count(f" {ALICE_UID} ") == 2, listing


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webhook_server"))
from containerssh_webhooks import WebhookServer, entry  # noqa: E402

# A config server's answer for alice: her uid, and a file for her (the webhook's files belong
# to the user, as ContainerSSH's belong to the container's user).
ALICE_ANSWER = {
    "password": "alice pass",
    "config": {"identity": {"uid": 3001, "gid": 3001}},
    "files": {"/tmp/sshpod/token": entry(base64.b64encode(b"secret\n").decode(), sensitive=True)},
}
ALICE_SEES = "alice\n3001\n3001\nsecret\n3001:600\n"
ALICE_LOOKS = f"{TOOLS} id -un; id -u; id -g; b cat /tmp/sshpod/token; b stat -c %u:%a /tmp/sshpod/token"


def webhook_config(server: WebhookServer) -> dict:
    return {"auth": {"password": {"method": "webhook", "webhook": {"url": server.url}}, "publicKey": {"method": ""}},
            "configserver": {"url": server.url + "/config"}}


def test_a_config_server_gives_each_user_a_uid_and_hostile_names_get_no_container(scn):
    server = WebhookServer({"alice": ALICE_ANSWER, "eve:x": {"password": "eve pass"}})
    scn.finalizers.append(server.close)
    gw = scn.start(image_config(h.GUEST_IMAGE, webhook_config(server)))
    alice = scn.password_client(gw, password="alice pass").ssh(ALICE_LOOKS)
    assert (alice.returncode, alice.stdout) == (0, ALICE_SEES), alice

    # The webhook took the name, but `/etc/passwd` must never see it.
    eve = scn.password_client(gw, password="eve pass", user="eve:x").ssh("id")
    assert eve.returncode != 0, eve
    assert "the login name `eve:x` cannot be a user in your container" in eve.stderr, eve
    assert "cannot be a user in your container" in gw.log, "the refusal is logged"


def test_kubernetes_config_server_uid_and_files_belong_to_the_user(kube, scn):
    server = WebhookServer({"alice": ALICE_ANSWER})
    scn.finalizers.append(server.close)
    gw = kube(h.deep_merge(kube_image(h.GUEST_IMAGE), webhook_config(server)))
    alice = scn.password_client(gw, password="alice pass").ssh(ALICE_LOOKS)
    assert (alice.returncode, alice.stdout) == (0, ALICE_SEES), alice
