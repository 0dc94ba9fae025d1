"""A home that persists and a container per user, on Docker.

Every test logs in as a user of its own (`stud-RUNID`), so the homes it makes cannot meet those of
another test or run; a finalizer removes them (they carry the run's test label too). The gateways
are stopped before the scenario's leak check: a user container in its grace period is not left
behind, and shutdown must remove it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess

import harness as h


def student(scn) -> str:
    """A user of this test only, with alice's key."""
    user = f"stud-{scn.run_id[:10]}"
    shutil.copy(scn.keys["alice"].with_suffix(".pub"), scn.tmp / "authorized_keys" / user)
    scn.finalizers.append(lambda: remove_volumes(scn.run_id))
    return user


def remove_volumes(run_id: str) -> None:
    names = h.docker("volume", "ls", "-q", "--filter", f"label={h.TEST_LABEL}={run_id}").stdout.decode().split()
    if names:
        h.docker("volume", "rm", "-f", *names, check=False)


def home_volumes(user: str) -> list[str]:
    return h.docker("volume", "ls", "-q", "--filter", "label=sshpod.home=home",
                    "--filter", f"label=sshpod.user={user}").stdout.decode().split()


def homes_config(grace: str = "0s", mode: str = "connection") -> dict:
    return {"homes": {"enable": True, "gracePeriod": grace}, "docker": {"execution": {"mode": mode}}}


def start(scn, overrides: dict, name: str | None = None) -> h.Gateway:
    gateway = scn.start(overrides, name=name)
    # Stopped before the leak check: shutdown removes user containers in their grace period.
    scn.finalizers.insert(0, gateway.stop)
    return gateway


def homes_cli(gateway: h.Gateway, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(h.sshpod_bin()), "--config", str(gateway.config_path), "homes", *args],
                          input=input or "", capture_output=True, text=True, timeout=120, env=h.child_env())


def ok(result: h.Result) -> str:
    assert result.returncode == 0, result
    return result.stdout


def test_a_file_in_the_home_survives_logout_a_new_login_and_a_restart(scn):
    user = student(scn)
    gateway = start(scn, homes_config())
    client = scn.client(gateway, user=user)
    ok(client.ssh(f"echo kept > /home/{user}/notes.txt"))
    h.wait_no_containers(scn.run_id)
    assert ok(client.ssh(f"cat /home/{user}/notes.txt")) == "kept\n"
    assert len(home_volumes(user)) == 1, "one home volume, labelled with its user"

    gateway.stop()
    restarted = start(scn, homes_config(), name="restarted")
    assert ok(scn.client(restarted, user=user).ssh(f"cat /home/{user}/notes.txt")) == "kept\n"
    assert len(home_volumes(user)) == 1, "the restart made no second home"


def test_homes_of_two_users_are_apart(scn):
    user = student(scn)
    other = f"{user}-b"
    shutil.copy(scn.keys["alice"].with_suffix(".pub"), scn.tmp / "authorized_keys" / other)
    gateway = start(scn, homes_config())
    ok(scn.client(gateway, user=user).ssh(f"echo mine > /home/{user}/f"))
    assert ok(scn.client(gateway, user=other).ssh(f"ls -A /home/{other}")) == "", "a fresh, empty home"
    assert user not in ok(scn.client(gateway, user=other).ssh("ls /home")).split(), "nobody else's home"


def test_connections_of_a_user_share_one_container_and_a_reconnect_finds_its_processes(scn):
    user = student(scn)
    gateway = start(scn, homes_config(grace="10m", mode="user"))
    client = scn.client(gateway, user=user)
    first = scn.track(client.popen("echo started; exec sleep 600", stdout=subprocess.PIPE))
    assert h.read_line(first.stdout, h.COMMAND_TIMEOUT) == b"started\n"
    # A second connection lands in the same container and sees the first one's process.
    assert ok(client.ssh("cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c 'sleep 60[0]'")) == "1\n"
    assert len(h.containers(scn.run_id, running_only=True)) == 1
    # A process left running, every connection gone: the container waits for the user.
    ok(client.ssh("nohup sleep 4242 >/dev/null 2>&1 &"))
    first.kill()
    first.wait()
    [container] = h.wait_containers(scn.run_id, 1)
    assert ok(client.ssh("cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c 'sleep 424[2]'")) == "1\n"
    assert h.containers(scn.run_id, running_only=True) == [container], "the same container"
    # The log (and the recording) says the container was kept, not that it was removed.
    gateway.wait_for_log("SSHPOD_CONTAINER_KEPT", 10)
    assert "SSHPOD_CONTAINER_REMOVED" not in gateway.log

    # Shutdown removes the user container at once; the home stays.
    assert gateway.stop() == 0, gateway.log
    assert h.containers(scn.run_id) == [], "sshpod exited but left the user container behind"
    assert len(home_volumes(user)) == 1


def test_the_user_container_goes_after_the_grace_period_and_the_home_stays(scn):
    user = student(scn)
    gateway = start(scn, homes_config(grace="5s", mode="user"))
    client = scn.client(gateway, user=user)
    ok(client.ssh(f"echo kept > /home/{user}/f"))
    h.wait_containers(scn.run_id, 1, timeout=2)
    h.wait_no_containers(scn.run_id, 30)
    assert ok(client.ssh(f"cat /home/{user}/f")) == "kept\n"


def test_homes_ls_du_and_rm(scn):
    user = student(scn)
    gateway = start(scn, homes_config(grace="0s", mode="user"))
    client = scn.client(gateway, user=user)
    ok(client.ssh(f"head -c 300000 /dev/zero > /home/{user}/big"))
    [volume] = home_volumes(user)

    listed = homes_cli(gateway, "ls", user)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert rows[0] == ["USER", "KIND", "VOLUME", "CREATED"]
    assert [row[:3] for row in rows[1:]] == [[user, "home", volume]]

    usage = homes_cli(gateway, "du", user)
    assert usage.returncode == 0, usage.stderr
    [row] = [line.split("\t") for line in usage.stdout.splitlines()[1:]]
    assert row[:3] == [user, "home", volume] and int(row[3]) >= 300000, usage.stdout

    # Logged in: refused, whatever the answer.
    session = scn.track(client.popen("echo started; exec sleep 600", stdout=subprocess.PIPE))
    assert h.read_line(session.stdout, h.COMMAND_TIMEOUT) == b"started\n"
    refused = homes_cli(gateway, "rm", user, "--yes")
    assert refused.returncode == 1 and "is logged in" in refused.stderr, refused
    assert home_volumes(user) == [volume]
    session.kill()
    session.wait()
    h.wait_no_containers(scn.run_id)

    # Not confirmed: kept.
    declined = homes_cli(gateway, "rm", user, input="n\n")
    assert declined.returncode == 1 and "nothing removed" in declined.stderr, declined
    assert home_volumes(user) == [volume]

    removed = homes_cli(gateway, "rm", user, input="y\n")
    assert removed.returncode == 0, removed
    assert removed.stdout == f"removed {volume}\n"
    assert home_volumes(user) == []
    again = homes_cli(gateway, "rm", user, "--yes")
    assert again.returncode == 1 and "has no home" in again.stderr


def test_a_user_container_of_a_killed_sshpod_goes_and_the_home_stays(scn):
    user = student(scn)
    gateway = start(scn, homes_config(grace="10m", mode="user"))
    client = scn.client(gateway, user=user)
    ok(client.ssh(f"echo kept > /home/{user}/f"))
    h.wait_containers(scn.run_id, 1)
    gateway.signal(signal.SIGKILL)
    gateway.wait_exit(30)
    # Its lifeline closed with the process: the container ends and the engine removes it.
    h.wait_no_containers(scn.run_id, 30)
    restarted = start(scn, homes_config(grace="0s", mode="user"), name="restarted")
    assert ok(scn.client(restarted, user=user).ssh(f"cat /home/{user}/f")) == "kept\n"


def test_with_an_identity_the_home_is_the_users_and_the_first_login_step_runs_as_them(scn):
    user = student(scn)
    config = h.deep_merge(homes_config(), {"identity": {"enable": True, "uid": 2345}})
    config["homes"]["customizeCommand"] = 'id -u > who; echo "$USER $LOGNAME $HOME" >> who'
    gateway = start(scn, config)
    client = scn.client(gateway, user=user)
    ok(client.ssh("touch mine"))
    assert ok(client.ssh(f"stat -c %u /home/{user} /home/{user}/mine; cat /home/{user}/who")) == \
        f"2345\n2345\n2345\n{user} {user} /home/{user}\n"


def test_first_login_customisation_runs_once_in_the_home_and_shows_its_output(scn):
    user = student(scn)
    config = homes_config()
    config["homes"]["customizeCommand"] = "echo hello-from-setup; echo ran >> count; exit 3"
    gateway = start(scn, config)
    client = scn.client(gateway, user=user)
    first = client.ssh(input=f"cat /home/{user}/count\nexit\n")
    assert first.returncode == 0, first
    assert first.stdout == ("sshpod: customising your home (first login)\nhello-from-setup\n"
                            "sshpod: customisation failed: customizeCommand\nran\n"), first
    h.wait_no_containers(scn.run_id)
    again = client.ssh(input=f"cat /home/{user}/count\nexit\n")
    assert again.stdout == "ran\n", "it ran once; the second login shows nothing"
    assert ok(client.ssh(f"test -e /home/{user}/.sshpod-customized && echo marked")) == "marked\n"


# --------------------------------------------------------------------------------------------
# Kubernetes (kube-sim): homes are PersistentVolumeClaims, user containers are pods.

from test_kubernetes import kube_config, ks, pods, wait_no_pods  # noqa: E402,F401  (ks is a fixture)


def kube_student(scn, ks) -> str:
    user = f"stud-{scn.run_id[:10]}"
    shutil.copy(scn.keys["alice"].with_suffix(".pub"), scn.tmp / "authorized_keys" / user)
    scn.finalizers.append(lambda: ks.kubectl("delete", "pvc", "-n", "default", "-l", f"sshpod.user={user}",
                                             "--wait=false", check=False))
    scn.leak_checks.append(lambda: wait_no_pods(ks))
    return user


def kube_homes(ks, grace: str = "0s", mode: str = "connection") -> dict:
    # As root: kube-sim does not give a claim's volume to the pod's `fsGroup` as a cluster's
    # kubelet does, so the default uid 1000 could not write to a fresh home there.
    spec = {"securityContext": {"runAsUser": 0}, "containers": [{"name": "shell", "image": h.GUEST_IMAGE}]}
    return h.deep_merge(kube_config(ks, mode=mode, spec=spec), {"homes": {"enable": True, "gracePeriod": grace}})


def claims(ks, user: str) -> list[str]:
    out = ks.kubectl("get", "pvc", "-n", "default", "-l", f"sshpod.home=home,sshpod.user={user}",
                     "-o", "jsonpath={.items[*].metadata.name}").stdout
    return out.split()


def test_kubernetes_a_file_in_the_home_survives_logout_a_new_login_and_a_restart(scn, ks):
    user = kube_student(scn, ks)
    gateway = start(scn, kube_homes(ks))
    client = scn.client(gateway, user=user)
    ok(client.ssh(f"echo kept > /home/{user}/notes.txt"))
    wait_no_pods(ks)
    assert ok(client.ssh(f"cat /home/{user}/notes.txt")) == "kept\n"
    [claim] = claims(ks, user)
    assert claim.startswith(f"sshpod-home-{user}-")
    size = ks.kubectl("get", "pvc", "-n", "default", claim, "-o",
                      "jsonpath={.spec.resources.requests.storage}").stdout
    assert size == "1Gi"

    gateway.stop()
    restarted = start(scn, kube_homes(ks), name="restarted")
    assert ok(scn.client(restarted, user=user).ssh(f"cat /home/{user}/notes.txt")) == "kept\n"
    assert claims(ks, user) == [claim], "the restart made no second claim"


def test_kubernetes_connections_of_a_user_share_one_pod_that_outlives_them_by_the_grace_period(scn, ks):
    user = kube_student(scn, ks)
    gateway = start(scn, kube_homes(ks, grace="10m", mode="user"))
    client = scn.client(gateway, user=user)
    first = scn.track(client.popen("echo started; exec sleep 600", stdout=subprocess.PIPE))
    assert h.read_line(first.stdout, h.COMMAND_TIMEOUT) == b"started\n"
    assert ok(client.ssh("cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c 'sleep 60[0]'")) == "1\n"
    [pod] = [p["metadata"]["name"] for p in pods(ks)]
    ok(client.ssh("nohup sleep 4242 >/dev/null 2>&1 &"))
    first.kill()
    first.wait()
    assert ok(client.ssh("cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c 'sleep 424[2]'")) == "1\n"
    assert [p["metadata"]["name"] for p in pods(ks)] == [pod], "the same pod"
    # Shutdown deletes the user pod; the claim stays.
    assert gateway.stop() == 0, gateway.log
    wait_no_pods(ks)
    assert len(claims(ks, user)) == 1


def test_kubernetes_the_user_pod_goes_after_the_grace_period_and_the_home_stays(scn, ks):
    user = kube_student(scn, ks)
    gateway = start(scn, kube_homes(ks, grace="5s", mode="user"))
    client = scn.client(gateway, user=user)
    ok(client.ssh(f"echo kept > /home/{user}/f"))
    wait_no_pods(ks, timeout=60)
    assert ok(client.ssh(f"cat /home/{user}/f")) == "kept\n"


def test_kubernetes_homes_ls_du_and_rm(scn, ks):
    user = kube_student(scn, ks)
    gateway = start(scn, kube_homes(ks, grace="0s", mode="user"))
    client = scn.client(gateway, user=user)
    ok(client.ssh(f"echo x > /home/{user}/f"))
    [claim] = claims(ks, user)

    listed = homes_cli(gateway, "ls", user)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[:3] for line in listed.stdout.splitlines()[1:]] == [[user, "home", claim]]
    usage = homes_cli(gateway, "du", user)
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.splitlines()[1].split("\t") == [user, "home", claim, "1Gi"]

    session = scn.track(client.popen("echo started; exec sleep 600", stdout=subprocess.PIPE))
    assert h.read_line(session.stdout, h.COMMAND_TIMEOUT) == b"started\n"
    refused = homes_cli(gateway, "rm", user, "--yes")
    assert refused.returncode == 1 and "is logged in" in refused.stderr, refused
    assert claims(ks, user) == [claim]
    session.kill()
    session.wait()
    wait_no_pods(ks)

    removed = homes_cli(gateway, "rm", user, "--yes")
    assert removed.returncode == 0, removed
    assert removed.stdout == f"removed {claim}\n"
    h.wait_until(lambda: not claims(ks, user), h.CLEANUP_TIMEOUT, "the claim to be deleted")


def test_kubernetes_a_user_pod_of_a_killed_sshpod_is_swept_by_the_next_and_the_home_stays(scn, ks):
    user = kube_student(scn, ks)
    short_lease = {"kubernetes": {"timeouts": {"instanceLease": "3s"}}}
    first = start(scn, h.deep_merge(kube_homes(ks, grace="10m", mode="user"), short_lease), name="first")
    client = scn.client(first, user=user)
    ok(client.ssh(f"echo kept > /home/{user}/f"))
    assert len(pods(ks)) == 1, "the user pod waits for the user"
    first.signal(signal.SIGKILL)
    first.wait_exit(30)
    restarted = start(scn, h.deep_merge(kube_homes(ks), short_lease), name="restarted")
    restarted.wait_for_log("removed pods left by instances that died", 60)
    wait_no_pods(ks)
    assert ok(scn.client(restarted, user=user).ssh(f"cat /home/{user}/f")) == "kept\n"


def test_kubernetes_first_login_customisation_runs_once_and_shows_its_output(scn, ks):
    user = kube_student(scn, ks)
    config = kube_homes(ks)
    config["homes"]["customizeCommand"] = "echo hello-from-setup; echo ran >> count; exit 3"
    gateway = start(scn, config)
    client = scn.client(gateway, user=user)
    first = client.ssh(input=f"cat /home/{user}/count\nexit\n")
    assert first.returncode == 0, first
    assert first.stdout == ("sshpod: customising your home (first login)\nhello-from-setup\n"
                            "sshpod: customisation failed: customizeCommand\nran\n"), first
    wait_no_pods(ks)
    again = client.ssh(input=f"cat /home/{user}/count\nexit\n")
    assert again.stdout == "ran\n", "it ran once; the second login shows nothing"
