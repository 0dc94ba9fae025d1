"""Login progress: a terminal session whose container takes more than a second to start is told,
on stderr, what the start waits for; sessions without a terminal (commands, sftp) never are."""

from __future__ import annotations

import secrets
import shutil
import subprocess

import harness as h
from test_homes import homes_config, ok, start, student
from test_kubernetes import kube, ks  # noqa: F401  (fixtures)

SETTING_UP = "sshpod: setting up your user and home...\r\n"


def slow_first_login(scn) -> h.Gateway:
    """A first login whose setup takes two seconds (the first-login step sleeps)."""
    config = homes_config()
    config["homes"]["customizeCommand"] = "sleep 2"
    return start(scn, config)


def test_a_terminal_is_told_what_a_slow_start_waits_for(scn):
    user = student(scn)
    client = scn.client(slow_first_login(scn), user=user)
    result = client.ssh("echo shell-ran", opts=["-tt"])
    assert result.returncode == 0, result
    assert SETTING_UP in result.stderr, result
    # Nothing but progress lines, each once.
    lines = result.stderr.splitlines(keepends=True)
    assert all(line.startswith("sshpod: ") and line.endswith("...\r\n") for line in lines), result
    assert len(set(lines)) == len(lines), result
    assert result.stdout.replace("\r", "").endswith("shell-ran\n"), result


def another_student(scn, suffix: str) -> str:
    """A second user of this test, with alice's key (its home goes with `student`'s finalizer)."""
    user = f"{student(scn)}-{suffix}"
    shutil.copy(scn.keys["alice"].with_suffix(".pub"), scn.tmp / "authorized_keys" / user)
    return user


def test_commands_and_sftp_never_see_progress(scn, tmp_path):
    gateway = slow_first_login(scn)
    # Each first login waits two seconds for its setup, twice the quiet second.
    result = scn.client(gateway, user=student(scn)).ssh("echo data")
    assert (result.returncode, result.stdout, result.stderr) == (0, "data\n", ""), result
    (tmp_path / "f").write_text("x")
    user = another_student(scn, "sftp")
    client = scn.client(gateway, user=user)
    put = client.run_args(client.sftp_args(opts=["-b", "-"]), input=f"put {tmp_path / 'f'} /home/{user}/f\n")
    assert put.returncode == 0 and "sshpod:" not in put.stderr, put
    assert ok(client.ssh(f"cat /home/{user}/f")) == "x"


def test_a_pod_waiting_for_its_volume_tells_the_terminal_why_and_starts_once_it_can(kube, scn, ks):
    config_map = f"progress-{secrets.token_hex(4)}"
    spec = {"containers": [{"name": "shell", "image": h.GUEST_IMAGE,
                            "volumeMounts": [{"name": "motd", "mountPath": "/etc/motd.d"}]}],
            "volumes": [{"name": "motd", "configMap": {"name": config_map}}]}
    gw = kube({"kubernetes": {"pod": {"spec": spec}}})
    session = scn.track(scn.client(gw).popen("cat /etc/motd.d/motd", opts=["-tt"], stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE))
    try:
        # Steps before it (starting, ContainerCreating without a reason) may show first.
        lines: list[bytes] = []
        while not lines or b"not found" not in lines[-1]:
            assert len(lines) < 5, lines
            lines.append(h.read_line(session.stderr, h.COMMAND_TIMEOUT))
        assert all(line.startswith(b"sshpod: ") and line.endswith(b"...\r\n") for line in lines), lines
        assert lines[-1] == (f"sshpod: waiting for your container to start: ContainerCreating: "
                             f"MountVolume.SetUp failed for volume \"motd\": configmap \"{config_map}\" "
                             f"not found...\r\n").encode(), lines
    finally:
        ks.kubectl("create", "configmap", config_map, "--from-literal=motd=welcome")
    out, err = session.communicate(timeout=h.COMMAND_TIMEOUT)
    assert session.returncode == 0, (out, err)
    assert out.replace(b"\r", b"") == b"welcome", (out, err)
    ks.kubectl("delete", "configmap", config_map)
