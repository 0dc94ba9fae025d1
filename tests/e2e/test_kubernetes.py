"""The Kubernetes backend, end to end: the real sshpod binary and OpenSSH client against
kube-sim (the Kubernetes API emulator in this repository, which runs pods as Docker
containers). One kube-sim serves the module; every test checks that the pods of its
connections are gone afterwards."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncssh
import pytest
import yaml

import harness as h

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kube_sim"))
import kubesim  # noqa: E402


@pytest.fixture(scope="module")
def ks(tmp_path_factory: pytest.TempPathFactory):
    if not kubesim.kube_sim_bin().is_file():
        pytest.fail(f"kube-sim not found at {kubesim.kube_sim_bin()}: run `cargo build -p kube-sim`",
                    pytrace=False)
    sim = kubesim.KubeSim(tmp_path_factory.mktemp("kube-sim"))
    yield sim
    status = sim.stop()
    left = kubesim.docker_ids("container", sim.instance)
    assert status == 0 and not left, (status, left, sim.logs())


def pods(ks, selector: str = "sshpod.instance") -> list[dict]:
    out = ks.kubectl("get", "pods", "-n", "default", "-l", selector, "-o", "yaml").stdout
    return yaml.safe_load(out)["items"]


def wait_no_pods(ks, selector: str = "sshpod.instance", timeout: float = h.CLEANUP_TIMEOUT) -> None:
    h.wait_until(lambda: not pods(ks, selector), timeout, f"pods matching {selector} to be deleted")


def kube_config(ks, **pod: object) -> dict:
    kubernetes: dict = {"connection": {"kubeconfig": str(ks.kubeconfig)}}
    if pod:
        kubernetes["pod"] = pod
    return {"backend": "kubernetes", "kubernetes": kubernetes}


@pytest.fixture
def kube(scn, ks):
    """Starts gateways on the Kubernetes backend; afterwards no pod of theirs may be left."""
    def start(overrides: dict | None = None, **kw):
        return scn.start(h.deep_merge(kube_config(ks), overrides or {}), **kw)

    scn.leak_checks.append(lambda: wait_no_pods(ks))
    return start


def test_commands_run_in_a_pod_as_non_root_and_the_pod_goes_at_logout(kube, scn, ks):
    gw = kube({"ssh": {"acceptEnv": ["GREETING"]}})
    client = scn.client(gw)
    result = client.ssh("cat; echo err >&2; id -u; echo \"$GREETING\"; exit 3", input=b"in\n",
                        opts=["-o", "SetEnv=GREETING=\"hello pod\""])
    assert result.returncode == 3, result
    assert result.stdout == "in\n1000\nhello pod\n", result
    assert result.stderr == "err\n", result
    wait_no_pods(ks)


def test_terminal_sessions_get_a_pty_with_term(kube, scn):
    gw = kube()
    result = scn.client(gw).ssh("tty; echo $TERM", opts=["-tt"], env={"TERM": "xterm-256color"})
    assert result.returncode == 0, result
    lines = result.stdout.replace("\r", "").splitlines()
    assert lines[0].startswith("/dev/pts/"), result
    assert lines[1] == "xterm-256color", result


def test_scp_and_sftp_in_one_connection(kube, scn, tmp_path):
    gw = kube()
    client = scn.client(gw)
    master = scn.control_path(client)
    opts = h.control_options(master)
    payload = tmp_path / "payload"
    payload.write_bytes(bytes(range(256)) * 4096)
    up = client.run_args(client.scp_args(str(payload), client.remote("/tmp/payload"), opts=opts))
    assert up.returncode == 0, up
    back = tmp_path / "back"
    down = client.run_args(client.sftp_args(opts=opts), input=f"get /tmp/payload {back}\n")
    assert down.returncode == 0, down
    assert back.read_bytes() == payload.read_bytes()


def test_local_port_forwarding_reaches_a_server_in_the_pod(kube, scn):
    gw = kube(h.FORWARDING)
    client = scn.client(gw)
    port = h.free_port()
    server = scn.track(client.popen(
        "mkdir -p /tmp/www && echo from-the-pod > /tmp/www/index.html && echo ready && "
        "exec busybox httpd -f -p 127.0.0.1:8080 -h /tmp/www",
        opts=["-L", f"127.0.0.1:{port}:localhost:8080"]))
    assert h.read_line(server.stdout, h.CONTAINER_TIMEOUT) == b"ready\n"

    def fetch():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as r:
                return r.read()
        except OSError:
            return None

    assert h.wait_until(fetch, 60, "the forwarded port to answer") == b"from-the-pod\n"


def test_signals_reach_the_process(kube, scn):
    gw = kube()

    async def scenario():
        async with asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                                    known_hosts=None, agent_path=None, config=None) as conn:
            proc = await conn.create_process("trap 'echo got TERM; exit 7' TERM; echo ready; "
                                             "while :; do sleep 0.1; done")
            assert await asyncio.wait_for(proc.stdout.readline(), 60) == "ready\n"
            proc.send_signal("TERM")
            output = await asyncio.wait_for(proc.stdout.read(), 60)
            return output, await asyncio.wait_for(proc.wait(), 60)

    output, result = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert "got TERM" in output and result.exit_status == 7, (output, result)


def gateway_behind_a_proxy(scn, ks):
    """A gateway that reaches kube-sim through a proxy the test can cut (kubectl still reaches
    kube-sim directly); afterwards no pod of its may be left."""
    cluster, _ = cluster_and_users(ks)
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    proxy = scn.proxy(int(cluster["server"].rsplit(":", 1)[1]))
    gw = scn.start({"backend": "kubernetes", "kubernetes": {"connection": {
        "host": f"https://127.0.0.1:{proxy.port}", "cacert": ca, "bearerToken": ks.admin_token,
        "serverName": "localhost"}}})
    scn.leak_checks.append(lambda: wait_no_pods(ks))
    return gw, proxy


def test_an_exec_cut_off_from_the_api_server_is_explained_by_its_pod(scn, ks):
    # The exec's stream breaks without an exit status; sshpod asks the API server (again,
    # while it does not answer) what became of the pod, and tells the client that, not a
    # guess. Here the pod was deleted while sshpod could not reach the API server.
    gw, proxy = gateway_behind_a_proxy(scn, ks)
    session = scn.track(scn.client(gw).popen("echo started; exec sleep 600"))
    assert h.read_line(session.stdout, h.CONTAINER_TIMEOUT) == b"started\n"
    [pod] = pods(ks)

    proxy.cut()  # the exec's stream breaks, and sshpod cannot ask yet
    gw.wait_for_log(re.compile(r"asking for the pod of an exec that ended without a status"), 30)
    ks.kubectl("delete", "pod", "-n", "default", pod["metadata"]["name"], "--grace-period=0")
    proxy.resume()
    _, stderr = session.communicate(timeout=60)
    assert session.returncode != 0
    assert b"sshpod: your pod went away while the command ran" in stderr, stderr


def test_pod_that_cannot_start_is_reported_at_once_and_deleted(kube, scn, ks):
    image = f"sshpod-missing-{scn.run_id}:none"
    gw = kube({"kubernetes": {"pod": {"spec": {"containers": [{"name": "shell", "image": image}]}}}})
    failed = scn.client(gw).ssh("true", timeout=120)
    assert failed.returncode != 0, failed
    assert "ErrImagePull" in failed.stderr or "ImagePullBackOff" in failed.stderr, failed
    assert image in failed.stderr, failed
    wait_no_pods(ks)
    assert gw.proc.poll() is None


def instance_of(gw: h.Gateway) -> str:
    return gw.wait_for_log(re.compile(r'instance="?([0-9a-f]{16}(?:-[0-9a-f]{16})?)'), 30).group(1)


def leases(ks) -> dict[str, dict]:
    out = ks.kubectl("get", "leases", "-n", "default", "-l", "sshpod.instance", "-o", "yaml").stdout
    return {lease["metadata"]["name"]: lease for lease in yaml.safe_load(out)["items"]}


def api_requests(gw: h.Gateway) -> str:
    pattern = re.compile(r"Kubernetes API requests for this connection api_requests=(\d+)")
    return gw.wait_for_log(pattern, 30).group(1)


SHORT_LEASE = {"kubernetes": {"timeouts": {"instanceLease": "3s"}}}


def sweeps(gw: h.Gateway) -> int:
    return gw.log.count("swept for orphans")


@pytest.mark.parametrize("mode", ["connection", "session"])
def test_a_killed_instances_pods_go_once_its_lease_expires_and_live_instances_keep_theirs(kube, scn, ks, mode):
    """Replicas share a namespace: one is killed; another, still serving, deletes the killed
    one's running pod and Lease once that Lease is no longer renewed, and never the pod of a
    live replica whose Lease lasts longer than the sweeper's own. In session mode the pod runs
    the session's program, which here ignores the end of its input and would run on."""
    survivor = kube(SHORT_LEASE, name="survivor")
    bystander = kube({"kubernetes": {"timeouts": {"instanceLease": "9s"}}}, name="bystander")
    victim_gw = kube(h.deep_merge(SHORT_LEASE, {"kubernetes": {"pod": {"mode": mode}}}), name="victim")
    sessions = {}
    for gw in (bystander, victim_gw):
        sessions[gw.name] = scn.track(scn.client(gw).popen("echo started; exec sleep 1000"))
        assert h.read_line(sessions[gw.name].stdout, h.CONTAINER_TIMEOUT) == b"started\n"
    dead = f"sshpod-{instance_of(victim_gw)}"
    live = f"sshpod-{instance_of(bystander)}"
    assert sorted(p["metadata"]["labels"]["sshpod.lease"] for p in pods(ks)) == sorted([dead, live])

    victim_gw.signal(signal.SIGKILL)
    victim_gw.wait_exit(30)
    survivor.wait_for_log("removed pods left by instances that died", 60)
    h.wait_until(lambda: dead not in leases(ks), 30, "the dead instance's lease to be deleted")
    # Four more sweeps, over more than the bystander's 9 s: its pod and Lease stay.
    seen = sweeps(survivor)
    h.wait_until(lambda: sweeps(survivor) >= seen + 4, 60, "four more sweeps by the survivor")
    remaining = pods(ks)
    assert [p["metadata"]["labels"]["sshpod.lease"] for p in remaining] == [live], remaining
    assert remaining[0]["status"]["phase"] == "Running"
    assert live in leases(ks)
    assert sessions["bystander"].poll() is None, "the live replica's session went on"
    sessions["bystander"].kill()


def test_a_restart_in_the_same_place_deletes_at_once_the_pods_its_earlier_life_never_ran(kube, scn, ks):
    """A `kill -9` between a pod's create and its start leaves it pending, named by a Lease that
    looks alive for its whole duration (a minute here). sshpod started again in the same place
    (host and listening address: the same container restarted) knows its earlier life is gone
    and deletes that pod at once; a live sibling's pending pod stays."""
    config = {"ssh": {"listen": f"127.0.0.1:{h.free_port()}"}}
    killed = kube(config, name="killed")
    sibling = kube(name="sibling")
    earlier, live = instance_of(killed), instance_of(sibling)
    assert earlier.count("-") == 1, earlier
    killed.signal(signal.SIGKILL)
    killed.wait_exit(30)

    def pending(owner: str, name: str) -> str:
        ks.kubectl("run", name, "-n", "default", f"--image=sshpod-missing-{scn.run_id}:none", "--restart=Never",
                   "--image-pull-policy=Never", f"--labels=sshpod.instance={owner},sshpod.lease=sshpod-{owner}")
        scn.finalizers.append(lambda: ks.kubectl("delete", "pod", name, "-n", "default", "--wait=false", check=False))
        return name
    left, siblings = pending(earlier, f"left-{scn.run_id}"), pending(live, f"sibling-{scn.run_id}")
    assert f"sshpod-{earlier}" in leases(ks), "the killed instance's Lease has not expired"

    def names() -> list[str]:
        return [p["metadata"]["name"] for p in pods(ks)]
    began = time.monotonic()
    kube(config, name="restarted")
    h.wait_until(lambda: left not in names(), 15, "the earlier life's pending pod deleted at the next start")
    print(f"pending pod of the killed instance deleted {time.monotonic() - began:.1f} s after the restart began")
    assert siblings in names(), "a live sibling's pending pod stays"


def test_an_instance_whose_lease_was_deleted_holds_a_new_one(kube, scn, ks):
    """Another replica that took this one for dead (its API server was out of reach for a
    while) deletes its Lease; the instance, alive after all, takes a new one at once."""
    gw = kube(SHORT_LEASE)
    lease = f"sshpod-{instance_of(gw)}"
    uid = leases(ks)[lease]["metadata"]["uid"]
    ks.kubectl("delete", "lease", lease, "-n", "default")
    h.wait_until(lambda: lease in leases(ks), 30, "the instance to hold a new lease")
    assert leases(ks)[lease]["metadata"]["uid"] != uid
    assert scn.client(gw).ssh("true").returncode == 0


def test_with_the_lifeline_a_killed_sshpods_pod_ends_by_itself(kube, scn, ks):
    """`pod.lifeline: true`: one attach more per login (five requests), and the pod ends as
    soon as sshpod dies, even if no sshpod ever runs again; the next one deletes it."""
    first = kube(h.deep_merge(SHORT_LEASE, {"kubernetes": {"pod": {"lifeline": True}}}), name="first")
    assert scn.client(first).ssh("true").returncode == 0
    # create, watch, attach (the lifeline), exec, delete
    assert api_requests(first) == "5"
    victim = scn.track(scn.client(first).popen("echo started; exec sleep 1000"))
    assert h.read_line(victim.stdout, h.CONTAINER_TIMEOUT) == b"started\n"

    first.signal(signal.SIGKILL)
    first.wait_exit(30)

    def ended() -> bool:
        return any(p["status"].get("phase") in ("Succeeded", "Failed") for p in pods(ks))

    h.wait_until(ended, 60, "the pod of the killed instance to end (its lifeline closed)")
    kube(SHORT_LEASE, name="restarted").wait_for_log("removed pods left by instances that died", 60)
    assert pods(ks) == []


def test_persistent_mode_shares_one_pod_and_keeps_it(kube, scn, ks):
    name = f"persistent-{scn.run_id}"
    gw = kube({"kubernetes": {"pod": {
        "mode": "persistent", "createMissingPods": True,
        "metadata": {"name": name, "namespace": "default", "labels": {"test": scn.run_id}},
    }}})
    client = scn.client(gw)
    assert client.ssh("echo kept > /tmp/mark").returncode == 0
    again = client.ssh("cat /tmp/mark")
    assert again.stdout == "kept\n", again
    assert [p["metadata"]["name"] for p in pods(ks, f"test={scn.run_id}")] == [name]
    ks.kubectl("delete", "pod", name, "--wait=true")


def test_legacy_kuberun_with_a_bearer_token_and_inline_ca(scn, ks):
    config = yaml.safe_load(ks.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    gw = scn.start({"backend": "kuberun", "kuberun": {
        "connection": {"host": cluster["server"], "cacert": ca, "bearerToken": ks.admin_token},
        "pod": {"namespace": "default", "disableCommand": True},
    }})
    assert "`kuberun` is deprecated" in gw.log
    refused = scn.client(gw).ssh("echo hi")
    assert refused.returncode != 0 and "disabled" in refused.stderr, refused
    shell = scn.client(gw).ssh(input=b"echo from-a-shell\nexit\n", opts=["-T"])
    assert "from-a-shell" in shell.stdout, shell
    wait_no_pods(ks)


def test_wrong_credentials_stop_start_up(scn, ks):
    config = yaml.safe_load(ks.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    gw = scn.start({"backend": "kubernetes", "kubernetes": {
        "connection": {"host": cluster["server"], "cacert": ca, "bearerToken": "not-a-token"}}}, wait=False)
    assert gw.wait_exit(60) != 0
    assert "connecting to the Kubernetes API server" in gw.log, gw.log


def test_deploy_artefacts_grant_exactly_what_sshpod_needs_and_carry_a_valid_config(scn):
    deploy = h.REPO_ROOT / "deploy" / "kubernetes"
    docs = [d for f in sorted(deploy.glob("*.yaml")) if f.name != "kustomization.yaml"
            for d in yaml.safe_load_all(f.read_text()) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    role = by_kind["Role"][0]
    assert role["metadata"]["namespace"] == "sshpod-guests"
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): sorted(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("",), ("pods",)): sorted(["create", "get", "list", "watch", "delete"]),
        (("",), ("pods/exec", "pods/attach", "pods/portforward")): ["create", "get"],
        (("coordination.k8s.io",), ("leases",)): sorted(["create", "get", "update", "list", "delete"]),
        # Homes: sshpod creates a user's claim at their first login (one that exists is theirs).
        (("",), ("persistentvolumeclaims",)): ["create"],
    }
    binding = by_kind["RoleBinding"][0]
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": "sshpod", "namespace": "sshpod"}
    assert by_kind["NetworkPolicy"][0]["metadata"]["namespace"] == "sshpod-guests"
    config_text = by_kind["ConfigMap"][0]["data"]["config.yaml"]
    path = scn.tmp / "deployed-config.yaml"
    path.write_text(config_text)
    checked = h.run_sshpod(["check-config", "--config", str(path)])
    assert checked.returncode == 0, checked.stderr
    assert yaml.safe_load(config_text)["kubernetes"]["pod"]["metadata"]["namespace"] == "sshpod-guests"
    kustomized = yaml.safe_load((deploy / "kustomization.yaml").read_text())["resources"]
    assert sorted(kustomized) == sorted(f.name for f in deploy.glob("*.yaml") if f.name != "kustomization.yaml")


def deploy_role_rules() -> list[dict]:
    docs = yaml.safe_load_all((h.REPO_ROOT / "deploy" / "kubernetes" / "rbac.yaml").read_text())
    return next(d for d in docs if d and d["kind"] == "Role")["rules"]


GUESTS = "sshpod-guests"


def sim_with_deploy_role(scn, leases: bool) -> tuple[kubesim.KubeSim, dict]:
    """A kube-sim of its own whose restricted token has exactly the rights of
    deploy/kubernetes/rbac.yaml's Role (without its leases rule unless `leases`), and a
    configuration that uses that token."""
    rules = deploy_role_rules()
    if not leases:
        rules = [r for r in rules if "leases" not in r["resources"]]
    (scn.tmp / "rules.json").write_text(json.dumps(rules))
    (scn.tmp / "sim").mkdir()
    sim = kubesim.KubeSim(scn.tmp / "sim", "--restricted-namespace", GUESTS,
                          "--restricted-rules", str(scn.tmp / "rules.json"))

    def stop_sim() -> None:
        status = sim.stop()
        left = kubesim.docker_ids("container", sim.instance)
        assert status == 0 and not left, (status, left, sim.logs())

    scn.finalizers.append(stop_sim)
    config = {"backend": "kubernetes", "kubernetes": {
        "connection": {"host": sim.url, "cacertFile": str(sim.ca_file), "bearerToken": sim.restricted_token},
        "pod": {"metadata": {"namespace": GUESTS, "generateName": "sshpod-"}}}}
    return sim, config


def guest_pods(sim: kubesim.KubeSim) -> list[dict]:
    return yaml.safe_load(sim.kubectl("get", "pods", "-n", GUESTS, "-o", "yaml").stdout)["items"]


def guest_leases(sim: kubesim.KubeSim) -> list[str]:
    return sim.kubectl("get", "leases", "-n", GUESTS, "-o", "name").stdout.split()


def test_the_deploy_role_is_all_sshpod_needs(scn):
    """sshpod with exactly the rights of the deploy Role (kube-sim enforces them): logins, the
    Lease's creation, renewals and deletion, and the sweeps all go through without a refusal."""
    sim, config = sim_with_deploy_role(scn, leases=True)
    gw = scn.start(h.deep_merge(config, SHORT_LEASE))
    result = scn.client(gw).ssh("echo hello")
    assert (result.returncode, result.stdout) == (0, "hello\n"), result
    assert api_requests(gw) == "4"
    assert guest_leases(sim) == [f"lease.coordination.k8s.io/sshpod-{instance_of(gw)}"]
    h.wait_until(lambda: sweeps(gw) >= 2 and re.search(r"instance API requests=1 lease=", gw.log), 30,
                 "a renewal and two sweeps")
    h.wait_until(lambda: not guest_pods(sim), h.CLEANUP_TIMEOUT, "the login's pod to be deleted")
    assert gw.stop() == 0
    assert guest_leases(sim) == [], "the lease is given up at shutdown"
    assert "forbidden" not in gw.log.lower(), gw.log


def test_with_an_older_role_without_leases_pods_get_a_lifeline_and_still_go_when_sshpod_is_killed(scn):
    """A Role from before the instance Lease grants nothing on leases: sshpod says so at start
    and ties every pod to itself with a lifeline, one request more per login. Killed, its pod
    ends by itself, and the next start deletes it."""
    sim, config = sim_with_deploy_role(scn, leases=False)
    gw = scn.start(config)
    assert "cannot hold an instance lease" in gw.log, gw.log
    assert scn.client(gw).ssh("true").returncode == 0
    # create, watch, attach (the lifeline), exec, delete
    assert api_requests(gw) == "5"
    assert guest_leases(sim) == []
    session = scn.track(scn.client(gw).popen("echo started; exec sleep 1000"))
    assert h.read_line(session.stdout, h.CONTAINER_TIMEOUT) == b"started\n"
    [pod] = guest_pods(sim)
    assert "sshpod.lease" not in pod["metadata"]["labels"]

    gw.signal(signal.SIGKILL)
    gw.wait_exit(30)
    h.wait_until(lambda: all(p["status"].get("phase") in ("Succeeded", "Failed") for p in guest_pods(sim)),
                 60, "the pod of the killed instance to end (its lifeline closed)")
    restarted = scn.start(config, name="restarted")
    restarted.wait_for_log("removed containers left by instances that died", 30)
    h.wait_until(lambda: not guest_pods(sim), h.CLEANUP_TIMEOUT, "the ended pod to be deleted")
    assert restarted.stop() == 0


def test_session_mode_gives_every_session_its_own_pod(kube, scn, ks):
    gw = kube({"kubernetes": {"pod": {"mode": "session"}}})
    client = scn.client(gw)
    master = scn.control_path(client)
    opts = h.control_options(master)
    first = client.ssh("cat; hostname; exit 5", input=b"to the first\n", opts=opts)
    assert first.returncode == 5, first
    second = client.ssh("hostname", opts=opts)
    assert second.returncode == 0, second
    lines = first.stdout.splitlines()
    assert lines[0] == "to the first", first
    assert lines[1] != second.stdout.strip(), "each session runs in a pod of its own"
    tty = client.ssh("tty", opts=[*opts, "-tt"])
    assert tty.stdout.startswith("/dev/pts/"), tty
    # Session pods are deleted as their sessions end, not only at logout.
    h.wait_until(lambda: len(pods(ks)) == 0, h.CLEANUP_TIMEOUT, "session pods to be deleted")


def test_a_login_costs_four_api_requests_and_its_pod_names_the_instance_lease(kube, scn, ks):
    """create, watch, exec, delete: what removes the pods of a killed sshpod is the
    instance's Lease, renewed for the whole process, not a stream per login."""
    gw = kube()
    instance = instance_of(gw)
    held = leases(ks)[f"sshpod-{instance}"]
    assert held["spec"]["holderIdentity"] == instance
    assert held["spec"]["leaseDurationSeconds"] == 60
    client = scn.client(gw)
    proc = scn.track(client.popen("echo ready; exec cat", stdin=subprocess.PIPE))
    assert h.read_line(proc.stdout, h.CONTAINER_TIMEOUT) == b"ready\n"
    found = pods(ks)
    assert len(found) == 1, found
    pod = found[0]
    assert pod["metadata"]["labels"]["sshpod.lease"] == f"sshpod-{instance}"
    command = pod["spec"]["containers"][0]["command"]
    assert "while read" not in " ".join(command), "the idle command must not wait on stdin"
    proc.stdin.write(b"still here\n")
    proc.stdin.flush()
    assert h.read_line(proc.stdout, h.CONTAINER_TIMEOUT) == b"still here\n"
    proc.stdin.close()
    assert proc.wait(h.CONTAINER_TIMEOUT) == 0
    assert api_requests(gw) == "4"
    wait_no_pods(ks)


def test_config_server_answers_shape_the_pod(kube, scn, ks):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webhook_server"))
    from containerssh_webhooks import WebhookServer, entry

    token = base64.b64encode(b"kube-token\n").decode()
    server = WebhookServer({
        "alice": {
            "password": "pod pass",
            "environment": {"FROM_AUTH": entry("auth")},
            "files": {"/tmp/sshpod/token": entry(token, sensitive=True)},
            "config": {"kubernetes": {"pod": {"metadata": {"labels": {"course": "os"}}}}},
        },
    })
    scn.finalizers.append(server.close)
    gw = kube({
        "auth": {"password": {"method": "webhook", "webhook": {"url": server.url}},
                 "publicKey": {"method": ""}},
        "configserver": {"url": server.url + "/config"},
    })
    client = scn.password_client(gw, password="pod pass")
    proc = scn.track(client.popen('echo "$FROM_AUTH"; cat /tmp/sshpod/token; stat -c %a /tmp/sshpod/token; '
                                  'echo done; exec sleep 1000'))
    out = b"".join(h.read_line(proc.stdout, h.CONTAINER_TIMEOUT) for _ in range(4))
    assert out == b"auth\nkube-token\n600\ndone\n", out
    labelled = pods(ks, "course=os")
    assert len(labelled) == 1, "the config server's labels reach the pod"
    proc.kill()
    assert "kube-token" not in gw.log


def cluster_and_users(ks) -> tuple[dict, dict]:
    config = yaml.safe_load(ks.kubeconfig.read_text())
    return config["clusters"][0]["cluster"], {u["name"]: u["user"] for u in config["users"]}


@pytest.mark.parametrize("method", [
    "client certificate inline", "client certificate and CA files", "bearer token file",
    "server name for SNI", "insecure",
])
def test_connection_methods(scn, ks, method):
    cluster, users = cluster_and_users(ks)
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    cert = base64.b64decode(users["admin-cert"]["client-certificate-data"]).decode()
    key = base64.b64decode(users["admin-cert"]["client-key-data"]).decode()
    connection: dict = {"host": cluster["server"], "cacert": ca}
    if method == "client certificate inline":
        connection.update(cert=cert, key=key)
    elif method == "client certificate and CA files":
        for name, text in (("ca.pem", ca), ("cert.pem", cert), ("key.pem", key)):
            (scn.tmp / name).write_text(text)
        del connection["cacert"]
        connection.update(cacertFile=str(scn.tmp / "ca.pem"), certFile=str(scn.tmp / "cert.pem"),
                          keyFile=str(scn.tmp / "key.pem"))
    elif method == "bearer token file":
        (scn.tmp / "token").write_text(ks.admin_token + "\n")
        connection["bearerTokenFile"] = str(scn.tmp / "token")
    elif method == "server name for SNI":
        # The address is an IP; the name the certificate is checked against is `localhost`.
        connection.update(bearerToken=ks.admin_token, serverName="localhost")
    else:
        del connection["cacert"]
        connection.update(bearerToken=ks.admin_token, insecure=True)
    gw = scn.start({"backend": "kubernetes", "kubernetes": {"connection": connection}})
    if method == "insecure":
        assert "NOT verified" in gw.log, gw.log
    result = scn.client(gw).ssh("echo connected")
    assert (result.returncode, result.stdout) == (0, "connected\n"), result
    wait_no_pods(ks)
    if method == "bearer token file":
        # Rotation: the file now holds a token without rights in this namespace; the next
        # login uses it (and is refused by the API server), without a restart.
        token = scn.tmp / "token"
        token.write_text(ks.restricted_token + "\n")
        stat = token.stat()
        os.utime(token, (stat.st_atime, stat.st_mtime + 5))
        refused = scn.client(gw).ssh("echo connected")
        assert refused.returncode != 0 and "pod was refused" in refused.stderr, refused


def test_a_pod_whose_deletion_fails_is_deleted_once_the_api_server_answers_again(scn, ks):
    gw, proxy = gateway_behind_a_proxy(scn, ks)
    client = scn.client(gw)
    session = scn.track(client.popen("echo started; exec sleep 600"))
    assert h.read_line(session.stdout, h.CONTAINER_TIMEOUT) == b"started\n"
    assert len(pods(ks)) == 1

    proxy.cut()  # the API server is gone for sshpod (kubectl still reaches it)
    session.kill()
    gw.wait_for_log(re.compile(r"could not delete the pod.*retry=true"), 60)
    assert len(pods(ks)) == 1, "the deletion failed"
    proxy.resume()
    wait_no_pods(ks)


def test_server_name_that_the_certificate_does_not_carry_stops_start_up(scn, ks):
    cluster, _ = cluster_and_users(ks)
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    gw = scn.start({"backend": "kubernetes", "kubernetes": {"connection": {
        "host": cluster["server"], "cacert": ca, "bearerToken": ks.admin_token,
        "serverName": "not-the-api-server.example"}}}, wait=False)
    assert gw.wait_exit(60) != 0
    assert "connecting to the Kubernetes API server" in gw.log, gw.log


def test_a_taken_port_stops_start_up_before_anything_is_made(scn, ks):
    """The port is taken before the backend connects: sshpod names the address and exits,
    and holds no instance Lease that would linger."""
    import socket
    taken = socket.create_server(("127.0.0.1", 0))
    scn.finalizers.append(taken.close)
    before = set(leases(ks))
    gw = scn.start(h.deep_merge(kube_config(ks), {"ssh": {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}}),
                   wait=False)
    assert gw.wait_exit(60) != 0
    gw.wait_drained()
    assert f"listening on 127.0.0.1:{taken.getsockname()[1]}" in gw.log, gw.log
    assert "connected to the Kubernetes API server" not in gw.log, gw.log
    assert set(leases(ks)) == before


def test_sigterm_ends_sessions_and_deletes_their_pods(kube, scn, ks):
    gw = kube()
    proc = scn.track(scn.client(gw).popen("echo started; exec sleep 1000"))
    assert h.read_line(proc.stdout, h.CONTAINER_TIMEOUT) == b"started\n"
    assert len(pods(ks)) == 1
    lease = f"sshpod-{instance_of(gw)}"
    assert lease in leases(ks)
    gw.signal(signal.SIGTERM)
    assert gw.wait_exit(60) == 0, gw.log
    wait_no_pods(ks)
    assert lease not in leases(ks), "a stopped instance gives its lease up"


def test_in_cluster_configuration_from_the_service_account(scn, ks):
    """sshpod in a pod: no connection settings, the service account's token and CA mounted
    where Kubernetes mounts them, and the API server named by KUBERNETES_SERVICE_HOST/PORT.
    Run here as a container on the host network with those mounts."""
    cluster, _ = cluster_and_users(ks)
    host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)
    account = scn.tmp / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(ks.admin_token)
    (account / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    (account / "namespace").write_text("default")
    listen_port = h.free_port()
    config = scn.config({
        "ssh": {"listen": f"127.0.0.1:{listen_port}", "hostkeys": ["/work/ssh_host_ed25519_key"]},
        "auth": {"publicKey": {"authorizedKeys": {"file": "/work/authorized_keys/%u"}},
                 "password": {"method": ""}},
        "backend": "kubernetes",
    })
    scn.write_config(config, "in-cluster.yaml")
    name = f"sshpod-in-cluster-{scn.run_id}"
    scn.finalizers.append(lambda: h.docker("rm", "-f", name, check=False))
    h.docker("run", "-d", "--name", name, "--network", "host",
             "--label", f"{h.TEST_LABEL}={scn.run_id}-runner",
             "-e", f"KUBERNETES_SERVICE_HOST={host}", "-e", f"KUBERNETES_SERVICE_PORT={port}",
             "-v", f"{h.sshpod_bin()}:/usr/local/bin/sshpod:ro",
             "-v", f"{scn.tmp}:/work",
             "-v", f"{account}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
             h.GUEST_IMAGE, "sshpod", "--config", "/work/in-cluster.yaml")
    h.wait_until(lambda: h.port_open(listen_port), 60, "sshpod in its container to listen")
    result = scn.client(listen_port).ssh("echo in-cluster")
    assert (result.returncode, result.stdout) == (0, "in-cluster\n"), (
        result, h.docker("logs", name, check=False).stderr)
    wait_no_pods(ks)
