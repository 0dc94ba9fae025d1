"""The warm pool (`pool`): containers (pods on Kubernetes) started ahead of logins. A login claims one that already
runs, and each login still gets a fresh container of its own (nothing of an earlier login is
seen, the container is never reused); the pool refills, grows toward recent logins, and its
members are gone after shutdown and after a `kill -9` and restart. A login whose settings are
fixed at creation and differ from the template's (here: a config server's answer) starts its own
container, as documented in the README.

Pool members carry the run's test label (it is in the template), so the scenario's check that
nothing is left applies; each test stops its gateway, which removes the members, before it ends."""

from __future__ import annotations

import base64
import signal
import pytest
import sys

import harness as h
from test_kubernetes import SHORT_LEASE, api_requests, kube, ks, pods  # noqa: F401 (fixtures)
from test_operations_http import http_urls, scrape
from test_webhooks import PASSWORD, hooks, password_only  # noqa: F401 (a fixture)

sys.path.insert(0, str(h.REPO_ROOT / "tests" / "webhook_server"))
from containerssh_webhooks import entry  # noqa: E402

POOL_LABEL = "sshpod.pool"


def members(run_id: str) -> list[str]:
    """The running pool members of a run (full ids), claimed ones included."""
    out = h.docker("ps", "-q", "--no-trunc", "--filter", f"label={h.TEST_LABEL}={run_id}",
                   "--filter", f"label={POOL_LABEL}").stdout
    return out.decode().split()


def unclaimed(run_id: str) -> list[str]:
    """The members still waiting for a login: not yet named after one."""
    ids = members(run_id)
    if not ids:
        return []
    out = h.docker("inspect", "--format", "{{.Id}} {{.Name}}", *ids, check=False).stdout.decode()
    return [line.split()[0] for line in out.splitlines() if line.split()[1:2] and "-pool-" in line.split()[1]]


def wait_ready(run_id: str, count: int, timeout: float = h.CONTAINER_TIMEOUT) -> list[str]:
    """Waits until exactly `count` unclaimed members run; returns their ids."""
    return h.wait_until(lambda: len(ids := unclaimed(run_id)) == count and ids, timeout,
                        f"{count} pooled container(s) ready")


def claimed_by(hostname: str, ready: list[str]) -> str:
    """The member (of `ready`) a login ran in, from the hostname it printed (Docker's default
    hostname is the short container id)."""
    matches = [m for m in ready if m.startswith(hostname)]
    assert len(matches) == 1, f"the login ran in {hostname}, not in a pooled container of {ready}"
    return matches[0]


def stop_and_check_nothing_left(scn, gw: h.Gateway) -> None:
    status = gw.stop()
    assert status == 0, gw.log
    assert h.containers(scn.run_id) == [], "shutdown left pooled containers behind"


def test_each_login_claims_a_fresh_pooled_container_and_the_pool_refills(scn):
    gw = scn.start({"pool": {"size": 2}})
    client = scn.client(gw)
    ready = wait_ready(scn.run_id, 2)
    for member in ready:
        labels = h.container_labels(member)
        assert labels.get(POOL_LABEL) == "true" and labels.get("sshpod.instance"), labels
        assert "sshpod.connection" not in labels and "sshpod.user" not in labels, labels

    first = client.ssh("hostname; echo secret > /tmp/mark; cat /tmp/mark")
    assert first.returncode == 0 and first.stdout.endswith("secret\n"), first
    first_id = claimed_by(first.stdout.split()[0], ready)

    # The pool refills, with a new container: the claimed one is never given back.
    ready = h.wait_until(lambda: len(ids := unclaimed(scn.run_id)) == 2 and first_id not in ids and ids,
                         h.CONTAINER_TIMEOUT, "the pool refilled with new containers")
    assert first_id not in h.containers(scn.run_id), "the first login's container outlived it"

    second = client.ssh("hostname; cat /tmp/mark 2>/dev/null || echo fresh")
    assert second.returncode == 0, second
    hostname, said = second.stdout.split()
    assert said == "fresh", "a file written by one login was seen by the next"
    assert claimed_by(hostname, ready) != first_id

    # While a login runs, its container says whose it is, and the pool is full beside it.
    ready = wait_ready(scn.run_id, 2)
    sleeper = scn.track(client.popen("hostname; exec sleep 1000"))
    running = claimed_by(h.read_line(sleeper.stdout, h.CONTAINER_TIMEOUT).decode().strip(), ready)
    name = h.docker("inspect", "--format", "{{.Name}}", running).stdout.decode().strip()
    assert name.startswith("/sshpod-alice-"), name
    h.wait_until(lambda: len(unclaimed(scn.run_id)) == 2 and len(members(scn.run_id)) == 3,
                 h.CONTAINER_TIMEOUT, "two ready beside the one in use")
    sleeper.kill()
    sleeper.wait()
    h.wait_until(lambda: running not in h.containers(scn.run_id), h.CLEANUP_TIMEOUT,
                 "the claimed container removed at logout")
    stop_and_check_nothing_left(scn, gw)


def test_webhook_environment_files_and_identity_reach_pooled_containers(scn, hooks):
    token = b"token-for-alice\n"
    server = hooks({"alice": {
        "password": PASSWORD,
        "environment": {"FROM_AUTH": entry("auth")},
        "files": {"/tmp/alice/token": entry(base64.b64encode(token).decode(), sensitive=True)},
    }})
    config = password_only(server.url)
    config["identity"] = {"enable": True}
    config["pool"] = {"size": 1}
    gw = scn.start(config)
    ready = wait_ready(scn.run_id, 1)
    result = scn.password_client(gw, password=PASSWORD).ssh(
        'hostname; id -un; echo "$FROM_AUTH"; cat /tmp/alice/token; stat -c %U /tmp/alice/token')
    assert result.returncode == 0, result
    hostname, user, env, content, owner = result.stdout.split("\n")[:5]
    claimed_by(hostname, ready)
    assert (user, env, content + "\n", owner) == ("alice", "auth", token.decode(), "alice"), result
    stop_and_check_nothing_left(scn, gw)


def test_a_config_server_answer_makes_the_login_start_its_own_container(scn, hooks):
    server = hooks({"alice": {"password": PASSWORD, "config_environment": {"COURSE": entry("os")}}})
    config = password_only(server.url)
    config["configserver"] = {"url": server.url + "/config"}
    config["pool"] = {"size": 1}
    port = h.free_port()
    config["metrics"] = {"enable": True, "listen": f"127.0.0.1:{port}"}
    gw = scn.start(config)
    ready = wait_ready(scn.run_id, 1)
    result = scn.password_client(gw, password=PASSWORD).ssh('hostname; echo "$COURSE"')
    assert result.returncode == 0, result
    hostname, course = result.stdout.split()
    assert course == "os", result
    assert not any(m.startswith(hostname) for m in ready), "the login claimed a pooled container"
    assert unclaimed(scn.run_id) == ready, "the pool was left as it was"
    metrics = scrape(http_urls(gw)["metrics"] + "metrics")
    assert metrics.value("sshpod_pool_misses_total", reason="config_server") == 1, metrics.text
    assert metrics.value("sshpod_pool_claims_total") == 0, metrics.text
    stop_and_check_nothing_left(scn, gw)


def test_a_pooled_container_removed_behind_sshpods_back_does_not_fail_the_login(scn):
    gw = scn.start({"pool": {"size": 1}})
    (member,) = wait_ready(scn.run_id, 1)
    h.docker("rm", "-f", member)
    result = scn.client(gw).ssh("hostname")
    assert result.returncode == 0, result
    assert not member.startswith(result.stdout.strip()), "the login ran in the removed container?"
    stop_and_check_nothing_left(scn, gw)


@pytest.mark.parametrize("fault", ["pause", "kill"])
def test_a_pooled_container_paused_or_stopped_behind_sshpods_back_is_not_handed_out(scn, fault):
    gw = scn.start({"pool": {"size": 1}})
    (member,) = wait_ready(scn.run_id, 1)
    h.docker(fault, member)
    result = scn.client(gw).ssh("hostname")
    assert result.returncode == 0, result
    assert not member.startswith(result.stdout.strip()), "the login ran in the broken member"
    stop_and_check_nothing_left(scn, gw)


def test_homes_turn_the_pool_off_with_a_warning(scn):
    gw = scn.start({"pool": {"size": 1}, "homes": {"enable": True}})
    gw.wait_for_log("the warm pool is off", 10)
    result = scn.client(gw).ssh("echo ok")
    assert (result.returncode, result.stdout) == (0, "ok\n"), result
    assert members(scn.run_id) == [], "a pool no login may use"
    stop_and_check_nothing_left(scn, gw)
    h.docker("volume", "rm", "-f", *h.docker("volume", "ls", "-q", "--filter",
                                             f"label={h.TEST_LABEL}={scn.run_id}").stdout.decode().split(),
             check=False)


def test_pool_members_are_gone_after_kill_9_and_restart(scn):
    port = h.free_port()
    config = scn.write_config(scn.config({"ssh": {"listen": f"127.0.0.1:{port}"}, "pool": {"size": 2}}),
                              "seat.yaml")
    gw = scn.start(config_path=config)
    before = wait_ready(scn.run_id, 2)
    gw.signal(signal.SIGKILL)
    gw.wait_exit(30)
    restarted = scn.start(config_path=config, name="restarted")
    h.wait_until(lambda: not set(before) & set(h.containers(scn.run_id)), h.CLEANUP_TIMEOUT,
                 "the killed instance's pooled containers gone")
    after = wait_ready(scn.run_id, 2)
    assert not set(after) & set(before)
    result = scn.client(restarted).ssh("hostname")
    assert result.returncode == 0, result
    claimed_by(result.stdout.strip(), after)
    stop_and_check_nothing_left(scn, restarted)


def test_the_pool_grows_toward_recent_logins(scn):
    port = h.free_port()
    gw = scn.start({"pool": {"size": 1, "max": 4, "demandWindow": "10m"},
                    "metrics": {"enable": True, "listen": f"127.0.0.1:{port}"}})
    client = scn.client(gw)
    wait_ready(scn.run_id, 1)
    for _ in range(4):
        result = client.ssh("true")
        assert result.returncode == 0, result
    wait_ready(scn.run_id, 4)
    metrics = scrape(http_urls(gw)["metrics"] + "metrics")
    assert metrics.value("sshpod_pool_target") == 4, metrics.text
    assert metrics.value("sshpod_pool_ready") == 4, metrics.text
    claims = metrics.value("sshpod_pool_claims_total") or 0
    empty = metrics.value("sshpod_pool_misses_total", reason="empty") or 0
    assert claims >= 1 and claims + empty == 4, metrics.text
    stop_and_check_nothing_left(scn, gw)


# --------------------------------------------------------------------------------------------
# Kubernetes (kube-sim)


def ready_pods(ks) -> list[str]:
    """The names of the running pool pods."""
    return sorted(p["metadata"]["name"] for p in pods(ks, POOL_LABEL)
                  if p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))


def wait_ready_pods(ks, count: int, timeout: float = h.CONTAINER_TIMEOUT) -> list[str]:
    return h.wait_until(lambda: len(names := ready_pods(ks)) == count and names, timeout,
                        f"{count} pooled pod(s) running")


def test_kubernetes_logins_claim_fresh_pooled_pods_and_the_pool_refills(kube, scn, ks):
    server_port = h.free_port()
    gw = kube({"pool": {"size": 2}, "metrics": {"enable": True, "listen": f"127.0.0.1:{server_port}"}})
    client = scn.client(gw)
    ready = wait_ready_pods(ks, 2)
    for p in pods(ks, POOL_LABEL):
        labels = p["metadata"]["labels"]
        assert labels["sshpod.lease"] and labels["sshpod.instance"], labels
        assert "sshpod.connection" not in labels and "sshpod.user" not in labels, labels

    first = client.ssh("hostname; echo secret > /tmp/mark; cat /tmp/mark")
    assert first.returncode == 0, first
    first_pod, said = first.stdout.split()
    assert first_pod in ready and said == "secret", (first.stdout, ready)
    # read back (still running?), exec, delete: counted as the connection's own requests
    assert api_requests(gw) == "3"
    # The first login's pod is deleted at its logout; the pool refills with a new one.
    ready = h.wait_until(lambda: len(names := ready_pods(ks)) == 2 and first_pod not in names and names,
                         h.CONTAINER_TIMEOUT, "the pool refilled with new pods")

    second = client.ssh("hostname; cat /tmp/mark 2>/dev/null || echo fresh")
    assert second.returncode == 0, second
    second_pod, said = second.stdout.split()
    assert said == "fresh", "a file written by one login was seen by the next"
    assert second_pod in ready and second_pod != first_pod
    metrics = scrape(http_urls(gw)["metrics"] + "metrics")
    assert metrics.value("sshpod_pool_claims_total") == 2, metrics.text

    assert gw.stop() == 0, gw.log
    assert pods(ks, POOL_LABEL) == [], "shutdown left pooled pods behind"


def test_kubernetes_a_pooled_pod_deleted_behind_sshpods_back_does_not_fail_the_login(kube, scn, ks):
    gw = kube({"pool": {"size": 1}})
    (member,) = wait_ready_pods(ks, 1)
    ks.kubectl("delete", "pod", member, "-n", "default", "--wait=true")
    result = scn.client(gw).ssh("hostname")
    assert result.returncode == 0, result
    assert result.stdout.strip() != member, "the login was handed the deleted pod"
    gw.wait_for_log("a pooled pod could not be used", 10)
    assert gw.stop() == 0, gw.log
    assert pods(ks, POOL_LABEL) == [], "shutdown left pooled pods behind"


def test_kubernetes_pool_pods_go_after_kill_9_once_the_lease_lapses(kube, scn, ks):
    victim = kube(h.deep_merge(SHORT_LEASE, {"pool": {"size": 2}}), name="victim")
    before = wait_ready_pods(ks, 2)
    victim.signal(signal.SIGKILL)
    victim.wait_exit(30)
    restarted = kube(SHORT_LEASE, name="restarted")
    restarted.wait_for_log("removed pods left by instances that died", 60)
    h.wait_until(lambda: not set(before) & {p["metadata"]["name"] for p in pods(ks, POOL_LABEL)},
                 h.CLEANUP_TIMEOUT, "the killed instance's pooled pods deleted")
    assert restarted.stop() == 0, restarted.log


def test_kubernetes_webhook_environment_and_files_reach_pooled_pods(kube, scn, ks, hooks):
    token = b"token-for-alice\n"
    server = hooks({"alice": {
        "password": PASSWORD,
        "environment": {"FROM_AUTH": entry("auth")},
        "files": {"/tmp/alice/token": entry(base64.b64encode(token).decode(), sensitive=True)},
    }})
    gw = kube(h.deep_merge(password_only(server.url), {"pool": {"size": 1}}))
    ready = wait_ready_pods(ks, 1)
    result = scn.password_client(gw, password=PASSWORD).ssh('hostname; echo "$FROM_AUTH"; cat /tmp/alice/token')
    assert result.returncode == 0, result
    assert result.stdout == f"{ready[0]}\nauth\n{token.decode()}", (result, ready)
    assert gw.stop() == 0, gw.log
    assert pods(ks, POOL_LABEL) == [], "shutdown left pooled pods behind"


def test_kubernetes_pooled_pods_with_a_lifeline_end_when_sshpod_is_killed(kube, scn, ks):
    """`pod.lifeline: true`: each member holds its own lifeline, claimed or not; after a
    `kill -9` the members end by themselves, and the next start deletes them."""
    gw = kube(h.deep_merge(SHORT_LEASE, {"pool": {"size": 1}, "kubernetes": {"pod": {"lifeline": True}}}),
              name="first")
    (member,) = wait_ready_pods(ks, 1)
    result = scn.client(gw).ssh("hostname")
    assert (result.returncode, result.stdout) == (0, f"{member}\n"), result
    (member,) = wait_ready_pods(ks, 1)
    gw.signal(signal.SIGKILL)
    gw.wait_exit(30)

    def ended() -> bool:
        # Nobody is left to delete it before the restart: it is there, and ended.
        return any(p["metadata"]["name"] == member and p["status"].get("phase") in ("Succeeded", "Failed")
                   for p in pods(ks, POOL_LABEL))

    h.wait_until(ended, 60, "the killed instance's pooled pod to end (its lifeline closed)")
    restarted = kube(SHORT_LEASE, name="restarted")
    restarted.wait_for_log("removed pods left by instances that died", 60)
    h.wait_until(lambda: pods(ks, POOL_LABEL) == [], h.CLEANUP_TIMEOUT, "the pooled pod deleted")
    assert restarted.stop() == 0, restarted.log
