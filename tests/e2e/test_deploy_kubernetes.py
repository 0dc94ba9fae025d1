"""The Kubernetes deployment in deploy/kubernetes, followed as written, against kube-sim: the
sshpod image built from the binary under test, the host-key Secret made with kubectl as the
deployment's comments say, `kubectl apply -k` of an overlay that only puts alice's key in the
ConfigMap and names the locally built image, logins to the replicas at their pod IPs, a replica
replaced by the Deployment controller, and `kubectl delete -k` leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import harness as h

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kube_sim"))
import kubesim  # noqa: E402

DEPLOY = h.REPO_ROOT / "deploy" / "kubernetes"
IMAGE_BUILD = h.REPO_ROOT / "images" / "sshpod" / "build.sh"
APP_SELECTOR = "app.kubernetes.io/name=sshpod"


@pytest.fixture
def ks(tmp_path_factory: pytest.TempPathFactory):
    if not kubesim.kube_sim_bin().is_file():
        pytest.fail(f"kube-sim not found at {kubesim.kube_sim_bin()}: run `cargo build -p kube-sim`",
                    pytrace=False)
    sim = kubesim.KubeSim(tmp_path_factory.mktemp("kube-sim"))
    yield sim
    status = sim.stop()
    left = kubesim.docker_ids("container", sim.instance) + kubesim.docker_ids("volume", sim.instance)
    assert status == 0 and not left, (status, left, sim.logs())
    assert not kubesim.state_dir(sim.instance).exists(), "kube-sim left its pods' file volumes behind"


def build_image(scn) -> str:
    """The sshpod image of the binary under test, under a repository of this run."""
    repository = f"sshpod-e2e-{scn.run_id}"
    version = subprocess.run([str(h.sshpod_bin()), "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    scn.finalizers.append(lambda: h.docker("rmi", "-f", f"{repository}:{version}", f"{repository}:latest",
                                           check=False))
    built = subprocess.run([str(IMAGE_BUILD), str(h.sshpod_bin())], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "SSHPOD_IMAGE": repository})
    assert built.returncode == 0, built.stderr
    return repository


def write_overlay(scn, repository: str) -> Path:
    """A kustomization over deploy/kubernetes that replaces only the authorized key in the
    ConfigMap, and points `sshpod:latest` at the image built for this run."""
    overlay = scn.tmp / "overlay"
    overlay.mkdir()
    alice = scn.keys["alice"].with_suffix(".pub").read_text().strip()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY, overlay)],
        "images": [{"name": "sshpod", "newName": repository, "newTag": "latest"}],
        "patches": [{"patch": json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "sshpod-config", "namespace": "sshpod"},
            "data": {"authorized_keys_alice": alice + "\n"},
        })}],
    }
    (overlay / "kustomization.yaml").write_text(h.to_yaml(kustomization) + "\n")
    return overlay


def get_json(ks, *args: str) -> dict:
    return json.loads(ks.kubectl("get", *args, "-o", "json").stdout)


def replicas(ks) -> list[dict]:
    return get_json(ks, "pods", "-n", "sshpod", "-l", APP_SELECTOR)["items"]


def ready_replicas(ks, deployment_uid: str) -> list[dict]:
    """The Deployment's pods when it reports both replicas ready, else []."""
    status = get_json(ks, "deployment", "sshpod", "-n", "sshpod").get("status", {})
    if status.get("readyReplicas") != 2 or status.get("availableReplicas") != 2:
        return []
    pods = [p for p in replicas(ks) if "deletionTimestamp" not in p["metadata"]]
    ready = [p for p in pods
             if p["status"].get("podIP")
             and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
    assert all(ref["uid"] == deployment_uid and ref["kind"] == "Deployment"
               for p in ready for ref in p["metadata"]["ownerReferences"]), ready
    return ready if len(ready) == 2 else []


def host_key_of(ip: str) -> str:
    """The ed25519 host key the server at ip:2222 presents ("ssh-ed25519 AAAA...")."""
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", "2222", ip], capture_output=True, text=True,
                          timeout=30)
    line = next((l for l in scan.stdout.splitlines() if not l.startswith("#")), "")
    return " ".join(line.split()[1:3])


def guest_pods_added_since(ks, rv: str) -> list[dict]:
    """Pods created in sshpod-guests after resourceVersion `rv` (from the watch history)."""
    path = f"/api/v1/namespaces/sshpod-guests/pods?watch=true&resourceVersion={rv}&timeoutSeconds=1"
    return [e["object"] for e in ks.watch_lines(path) if e["type"] == "ADDED"]


def login(scn, ks, ip: str) -> None:
    """alice logs in to the replica at `ip` and her command runs in a fresh pod in
    sshpod-guests, gone once she has logged out."""
    status, listed = ks.request("GET", "/api/v1/namespaces/sshpod-guests/pods")
    assert status == 200, listed
    rv = listed["metadata"]["resourceVersion"]
    result = scn.client(2222, host=ip).ssh("echo $(hostname) $(id -u)")
    assert result.returncode == 0, result
    hostname, uid = result.stdout.split()
    assert uid == "1000", result
    added = guest_pods_added_since(ks, rv)
    assert [(p["metadata"]["namespace"], p["spec"].get("hostname", p["metadata"]["name"])) for p in added] \
        == [("sshpod-guests", hostname)], added
    assert added[0]["spec"]["containers"][0]["image"] == h.GUEST_IMAGE
    h.wait_until(lambda: not get_json(ks, "pods", "-n", "sshpod-guests")["items"], 30,
                 "the guest pod to be deleted at logout")


@pytest.mark.timeout(420)
def test_the_kubernetes_deployment_runs_as_written(scn, ks, tmp_path):
    repository = build_image(scn)
    overlay = write_overlay(scn, repository)

    applied = ks.kubectl("apply", "-k", str(overlay))
    for line in ("namespace/sshpod created", "namespace/sshpod-guests created", "serviceaccount/sshpod created",
                 "role.rbac.authorization.k8s.io/sshpod created",
                 "rolebinding.rbac.authorization.k8s.io/sshpod created", "configmap/sshpod-config created",
                 "service/sshpod created", "deployment.apps/sshpod created",
                 "networkpolicy.networking.k8s.io/isolate-guests created"):
        assert line in applied.stdout.splitlines(), applied
    # What kube-sim stores without acting on it, it says.
    assert "kube-sim does not implement Services" in applied.stderr, applied
    assert "kube-sim does not enforce NetworkPolicies" in applied.stderr, applied

    # The host key Secret, made as deployment.yaml's comments say; until it exists the pods wait.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ssh_host_ed25519_key")],
                   check=True, stdin=subprocess.DEVNULL)
    created = subprocess.run(["kubectl", "-n", "sshpod", "create", "secret", "generic", "sshpod-hostkey",
                              "--from-file=ssh_host_ed25519_key"], cwd=tmp_path, env=ks.env, capture_output=True,
                             text=True, timeout=60)
    assert created.returncode == 0 and created.stdout == "secret/sshpod-hostkey created\n", created
    host_key = " ".join((tmp_path / "ssh_host_ed25519_key.pub").read_text().split()[:2])

    deployment = get_json(ks, "deployment", "sshpod", "-n", "sshpod")
    uid = deployment["metadata"]["uid"]
    try:
        pods = h.wait_until(lambda: ready_replicas(ks, uid), 120, "the Deployment to report 2 ready replicas")
    except h.WaitTimeout:
        raise AssertionError(ks.kubectl("get", "pods", "-A", "-o", "yaml").stdout + ks.logs()[-5000:])
    for pod in pods:
        assert pod["metadata"]["name"].startswith("sshpod-"), pod["metadata"]
        assert pod["spec"]["serviceAccountName"] == "sshpod"
        # Both replicas present the Secret's key.
        assert h.wait_until(lambda: host_key_of(pod["status"]["podIP"]), 30, "the replica to listen") == host_key

    first, second = pods
    login(scn, ks, first["status"]["podIP"])
    login(scn, ks, second["status"]["podIP"])

    # A deleted replica is replaced by a new pod of the same Deployment, which serves logins.
    ks.kubectl("delete", "pod", "-n", "sshpod", first["metadata"]["name"], timeout=120)
    pods = h.wait_until(lambda: [p for p in ready_replicas(ks, uid)
                                 if p["metadata"]["name"] != first["metadata"]["name"]], 120,
                        "a replacement replica")
    assert len(pods) == 2, pods
    replacement = next(p for p in pods if p["metadata"]["name"] != second["metadata"]["name"])
    login(scn, ks, replacement["status"]["podIP"])

    # Deleting the kustomization removes everything it made, and every container goes.
    deleted = ks.kubectl("delete", "-k", str(overlay), timeout=180)
    assert "deployment.apps \"sshpod\" deleted" in deleted.stdout, deleted
    assert "namespace \"sshpod-guests\" deleted" in deleted.stdout, deleted
    names = [n["metadata"]["name"] for n in get_json(ks, "namespaces")["items"]]
    assert "sshpod" not in names and "sshpod-guests" not in names, names
    assert get_json(ks, "pods", "-A")["items"] == []
    h.wait_until(lambda: not kubesim.docker_ids("container", ks.instance), 60, "kube-sim's containers to go")
    # The replicas' configMap, secret and token files went with their pods.
    state = kubesim.state_dir(ks.instance)
    h.wait_until(lambda: not state.exists() or not any(state.iterdir()), 30, f"{state} to be emptied")
