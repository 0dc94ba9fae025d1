"""Container lifecycle: whatever ends a connection (logout, a killed client, a dead network, the
server stopping or crashing, a container that cannot start), nothing is left behind and other
users keep working. The scenario fixture also checks after every test that the run's containers
are gone."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

import harness as h


def start_sleeper(scn, client: h.Client):
    """`sleep 1000` in a session; returns once the command runs inside the container."""
    proc = scn.track(client.popen("echo started; exec sleep 1000"))
    line = h.read_line(proc.stdout, h.CONTAINER_TIMEOUT)
    assert line == b"started\n", line
    return proc


def test_logout_removes_the_container(scn):
    gw = scn.start()
    client = scn.client(gw)
    proc = start_sleeper(scn, client)
    h.wait_containers(scn.run_id, 1)
    # A second connection has its own container.
    other = start_sleeper(scn, client)
    h.wait_containers(scn.run_id, 2)
    proc.kill()
    proc.wait()
    h.wait_containers(scn.run_id, 1)
    other.kill()
    other.wait()
    h.wait_no_containers(scn.run_id)


def test_killed_client_container_is_removed(scn):
    gw = scn.start()
    proc = start_sleeper(scn, scn.client(gw))
    h.wait_containers(scn.run_id, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    h.wait_no_containers(scn.run_id, 30)


def test_dead_network_is_detected_by_client_alive_checks(scn):
    gw = scn.start({"ssh": {"clientAliveInterval": "1s", "clientAliveCountMax": 2}})
    proxy = scn.proxy(gw.port)
    proc = start_sleeper(scn, scn.client(proxy.port))
    h.wait_containers(scn.run_id, 1)
    proxy.freeze()
    h.wait_no_containers(scn.run_id, 60)
    assert proc.poll() is None, "the client should not have noticed anything: only the server checks"


def test_sigterm_ends_sessions_removes_containers_and_exits_cleanly(scn):
    shutdown_timeout = 5
    gw = scn.start({"ssh": {"shutdownTimeout": f"{shutdown_timeout}s"}})
    proc = start_sleeper(scn, scn.client(gw))
    h.wait_containers(scn.run_id, 1)
    gw.signal(signal.SIGTERM)
    deadline = shutdown_timeout + 30
    try:
        proc.wait(deadline)
    except Exception:
        raise AssertionError(f"the ssh client still runs {deadline} s after SIGTERM to sshpod") from None
    status = gw.wait_exit(deadline)
    assert status == 0, gw.log
    assert h.containers(scn.run_id) == [], "sshpod exited but left its containers behind"


def test_containers_created_and_never_started_are_swept_at_once_by_the_same_seat_and_later_by_others(scn):
    """What a `kill -9` between a container's create and its start leaves: a container in
    Created, with no process that would ever end. The next start of sshpod in the same place
    (host and listening address) knows it as an earlier life's and removes it at once; one of
    an instance elsewhere may still be started by it, and goes once older than the start
    timeout allows, by the sweep that runs while sshpod serves."""
    port = h.free_port()
    overrides = {"ssh": {"listen": f"127.0.0.1:{port}"}, "docker": {"timeouts": {"containerStart": "3s"}}}
    config = scn.write_config(scn.config(overrides), "seat.yaml")
    gw = scn.start(config_path=config)
    sleeper = start_sleeper(scn, scn.client(gw))
    (container,) = h.wait_containers(scn.run_id, 1)
    instance = h.container_labels(container)["sshpod.instance"]
    seat, _, _ = instance.partition("-")
    assert seat and seat != instance, instance
    gw.signal(signal.SIGKILL)
    gw.wait_exit(30)
    sleeper.wait(60)

    def created(owner: str) -> str:
        return h.docker("create", "--label", f"sshpod.instance={owner}", "--label", f"{h.TEST_LABEL}={scn.run_id}",
                        h.GUEST_IMAGE, "sleep", "600").stdout.decode().strip()
    ours = created(f"{seat}-{'0' * 16}")
    elsewhere = created(f"{'f' * 16}-{'0' * 16}")

    restarted = scn.start(config_path=config, name="restarted")
    restarted.wait_for_log("removing container of a dead instance", 30)
    h.wait_until(lambda: ours not in h.containers(scn.run_id) and container not in h.containers(scn.run_id),
                 10, "the earlier life's containers removed at the next start")
    assert elsewhere in h.containers(scn.run_id), "another instance may still start its container"
    h.wait_until(lambda: elsewhere not in h.containers(scn.run_id), 40,
                 "the other instance's unstarted container removed once older than two start timeouts")


def instance_of(gw: h.Gateway) -> str:
    return gw.wait_for_log(re.compile(r'instance="?([0-9a-f]{16}-[0-9a-f]{16})'), 30).group(1)


@pytest.mark.timeout(240)
def test_what_a_killed_instance_left_in_any_state_goes_at_the_next_start_anywhere_and_a_live_siblings_stays(scn):
    """Issue 21's leak: a `kill -9` between a container's create and its start leaves it in
    Created, with no process that would ever end. An instance started next on this machine, at
    another address (another seat), knows the killed one is dead at once (its lock on its
    stream directory is gone) and removes all it left, whatever the state; a live sibling's
    container that it is about to start (Created, young) is never touched. The start timeout is
    long, so no age rule can be what removes anything here."""
    overrides = {"docker": {"timeouts": {"containerStart": "120s"}}}
    killed = scn.start(overrides, name="killed")
    sibling = scn.start(overrides, name="sibling")
    dead, live = instance_of(killed), instance_of(sibling)
    sibling_client = scn.client(sibling)
    assert sibling_client.ssh("echo up").stdout == "up\n"
    killed.signal(signal.SIGKILL)
    killed.wait_exit(30)

    def container(owner: str, *command: str) -> str:
        return h.docker(*command, "--label", f"sshpod.instance={owner}", "--label", f"{h.TEST_LABEL}={scn.run_id}",
                        h.GUEST_IMAGE, "sleep", "600").stdout.decode().strip()
    left = {
        "created": container(dead, "create"),
        "running": container(dead, "run", "-d"),
        "exited": container(dead, "create"),
        "paused": container(dead, "run", "-d"),
    }
    h.docker("start", left["exited"])
    h.docker("kill", left["exited"])
    h.docker("pause", left["paused"])
    about_to_start = container(live, "create")
    scn.finalizers.append(lambda: h.docker("rm", "-f", about_to_start, check=False))

    began = time.monotonic()
    scn.start(overrides, name="next")
    h.wait_until(lambda: not set(left.values()) & set(h.containers(scn.run_id)), 15,
                 f"the killed instance's containers ({left}) removed at the next start")
    print(f"removed {len(left)} containers of a killed instance {time.monotonic() - began:.1f} s after the next start")
    assert about_to_start in h.containers(scn.run_id), "a live sibling's container must stay"
    assert h.docker("inspect", "--format", "{{.State.Status}}", about_to_start).stdout.decode().strip() == "created"
    assert sibling_client.ssh("echo still-up").stdout == "still-up\n"


@pytest.mark.timeout(240)
def test_restart_after_sigkill_removes_orphans_of_its_own_only(scn):
    run_a = scn.run_id
    run_b = scn.new_run_id()
    gw_a = scn.start(name="A")
    gw_b = scn.start(run_id=run_b, name="B")

    proc_a = start_sleeper(scn, scn.client(gw_a))
    client_b = scn.client(gw_b)
    cm_b = h.control_options(scn.control_path(client_b, "cm-b"))
    result = client_b.ssh("echo started", opts=cm_b)
    assert result.returncode == 0, result
    (container_a,) = h.wait_containers(run_a, 1)
    (container_b,) = h.wait_containers(run_b, 1)

    gw_a.signal(signal.SIGKILL)
    gw_a.wait_exit(30)
    proc_a.wait(60)
    assert h.containers(run_a) == [container_a], "nobody is left to remove A's container yet"

    scn.start(config_path=gw_a.config_path, name="C")
    h.wait_no_containers(run_a, 60)

    assert h.containers(run_b, running_only=True) == [container_b], "B's container must survive"
    result = client_b.ssh("echo still-alive", opts=cm_b)
    assert (result.returncode, result.stdout) == (0, "still-alive\n"), result


@pytest.mark.timeout(240)
def test_container_that_cannot_start_is_reported_and_the_server_keeps_serving(scn):
    image = f"sshpod-missing-{scn.run_id}:none"
    gw = scn.start({"docker": {"execution": {"container": {"image": image}, "imagePullPolicy": "Never"}}})
    client = scn.client(gw)

    failed = client.ssh("echo hello", timeout=120)
    assert failed.returncode != 0, failed
    assert "cannot start" in failed.stderr, failed
    assert image in failed.stderr, failed

    # Same server, now with the image present: the next login works.
    h.docker("tag", h.GUEST_IMAGE, image)
    scn.finalizers.append(lambda: h.docker("rmi", image, check=False))
    result = client.ssh("echo hello")
    assert (result.returncode, result.stdout) == (0, "hello\n"), result


@pytest.mark.timeout(240)
def test_image_that_cannot_be_pulled_is_reported_and_nothing_is_left(scn):
    """With the default pull policy a missing image is pulled on the first login; a registry
    that cannot be reached (a closed local port) gives a short, true message."""
    closed = h.free_port()
    image = f"127.0.0.1:{closed}/sshpod-missing-{scn.run_id}:none"
    gw = scn.start({"docker": {"execution": {"container": {"image": image}}}})
    client = scn.client(gw)

    failed = client.ssh("echo hello", timeout=120)
    assert failed.returncode != 0, failed
    assert f"image `{image}` is not available on this server" in failed.stderr, failed
    assert h.containers(scn.run_id) == []
    assert gw.proc.poll() is None, "the server must keep serving"


def test_engine_that_goes_away_is_reported_and_serving_resumes_when_it_is_back(scn):
    """The engine vanishes while sshpod runs (here: the TCP front sshpod reaches it through is
    stopped). A login in that window gets a short, true message; sshpod keeps running and the
    next login after the engine returns works."""
    port = h.free_port()

    def start_front() -> subprocess.Popen:
        proc = subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                                 "UNIX-CONNECT:/var/run/docker.sock"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        scn.finalizers.append(lambda: (proc.kill(), proc.wait()))
        h.wait_until(lambda: h.port_open(port), 30, "the engine's TCP front to listen")
        return proc

    front = start_front()
    gw = scn.start({"docker": {"connection": {"host": f"tcp://127.0.0.1:{port}"}}})
    client = scn.client(gw)
    assert client.ssh("echo up").stdout == "up\n"

    front.kill()
    front.wait()
    failed = client.ssh("echo hello", timeout=120)
    assert failed.returncode != 0, failed
    assert "the container engine is unavailable" in failed.stderr, failed
    assert gw.proc.poll() is None, "sshpod must keep running"

    start_front()
    result = client.ssh("echo back")
    assert (result.returncode, result.stdout) == (0, "back\n"), result
