"""The Helm chart in deploy/helm/sshpod: `helm lint`; `helm template` of the values files in
tests/helm/values, every object validated strictly against Kubernetes 1.32's schemas
(kubernetes-validate) and the configuration it renders accepted by `sshpod check-config`, the
seed chart's values landing where the README's table says; a CA private key and unknown values
refused. Then the README's "Class on Kubernetes" walk-through, run against kube-sim with the
README's commands: a CA, a student key signed for `student`, `helm install`, a login with
`CertificateFile` that lands in a pod running as the student with their home claim mounted,
`helm uninstall` keeping the home and the host keys, a reinstall presenting the same host key
(StrictHostKeyChecking=yes) and the file still in the home, and the home deleted.

Helm comes from scripts/lib.sh `ensure_helm` (SSHPOD_HELM overrides the path)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import harness as h
from test_deploy_kubernetes import build_image, get_json, host_key_of, ks  # noqa: F401  (ks is a fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kube_sim"))
import kubesim  # noqa: E402

CHART = h.REPO_ROOT / "deploy" / "helm" / "sshpod"
VALUES = h.REPO_ROOT / "tests" / "helm" / "values"
HELM = Path(os.environ.get("SSHPOD_HELM", h.REPO_ROOT / "tests" / "helm" / "bin" / "helm"))
# kube-sim's version, which the walk-through installs into.
KUBERNETES_VERSION = "1.32.0"
SERVER_SELECTOR = "app.kubernetes.io/name=sshpod,app.kubernetes.io/component=server"


def helm(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    if not HELM.is_file():
        pytest.fail(f"helm not found at {HELM}: run `source scripts/lib.sh && ensure_helm`", pytrace=False)
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env if env is not None else os.environ)


def render(values: str, *extra: str) -> list[dict]:
    """The objects `helm template` makes of the chart with tests/helm/values/VALUES.yaml."""
    out = helm("template", "t", str(CHART), "--namespace", "class", "-f", str(VALUES / f"{values}.yaml"), *extra)
    assert out.returncode == 0, out.stderr
    return [o for o in yaml.safe_load_all(out.stdout) if o]


def valid(values: str, tmp_path: Path) -> dict[tuple[str, str], dict]:
    """Renders, validates every object against Kubernetes' schemas (strict: no unknown field)
    and the configuration with sshpod itself; the objects by (kind, name)."""
    objects = render(values)
    for o in objects:
        try:
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise AssertionError(f"{o['kind']} {o['metadata']['name']}: {str(e).splitlines()[0]}") from None
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert len(by_name) == len(objects), "two objects share a kind and name"
    config = tmp_path / "config.yaml"
    config.write_text(by_name[("ConfigMap", "t-sshpod")]["data"]["config.yaml"])
    checked = subprocess.run([str(h.sshpod_bin()), "--config", str(config), "check-config"], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    return by_name


def config_of(objects: dict) -> dict:
    return yaml.safe_load(objects[("ConfigMap", "t-sshpod")]["data"]["config.yaml"])


def pod_spec(objects: dict) -> dict:
    return objects[("Deployment", "t-sshpod")]["spec"]["template"]["spec"]


def test_the_chart_installs_the_version_of_sshpod_it_is_shipped_with():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = subprocess.run([str(h.sshpod_bin()), "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert chart["appVersion"] == version, (chart["appVersion"], version)


@pytest.mark.parametrize("values", sorted(p.stem for p in VALUES.glob("*.yaml")))
def test_the_chart_lints(values):
    out = helm("lint", "--strict", str(CHART), "-f", str(VALUES / f"{values}.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout


def test_defaults_make_a_server_with_kept_host_keys_probes_and_least_privilege(tmp_path):
    objects = valid("defaults", tmp_path)
    assert sorted(objects) == sorted([
        ("ConfigMap", "t-sshpod"), ("ConfigMap", "t-sshpod-authorized-keys"), ("Deployment", "t-sshpod"),
        ("NetworkPolicy", "t-sshpod-logins"), ("PodDisruptionBudget", "t-sshpod"), ("Role", "t-sshpod"),
        ("RoleBinding", "t-sshpod"), ("Secret", "t-sshpod-hostkeys"), ("Service", "t-sshpod"),
        ("ServiceAccount", "t-sshpod")])
    # The host key: generated, kept by Helm on uninstall, in a form sshpod reads (check-config
    # does not load keys, so sshpod's own loader is asked through `host-keys`).
    secret = objects[("Secret", "t-sshpod-hostkeys")]
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    key = tmp_path / "ssh_host_ed25519_key"
    key.write_bytes(base64.b64decode(secret["data"]["ssh_host_ed25519_key"]))
    key.chmod(0o600)
    (tmp_path / "keys.yaml").write_text(h.to_yaml(h.deep_merge(config_of(objects), {"ssh": {"hostkeys": [str(key)]}})))
    listed = subprocess.run([str(h.sshpod_bin()), "--config", str(tmp_path / "keys.yaml"), "host-keys"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.startswith("ssh-ed25519 SHA256:"), listed
    # Probes on the health endpoints; nothing privileged; the seed's LoadBalancer on port 22.
    container = pod_spec(objects)["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert objects[("Service", "t-sshpod")]["spec"]["type"] == "LoadBalancer"
    assert objects[("Service", "t-sshpod")]["spec"]["ports"] == [{"name": "ssh", "port": 22, "targetPort": "ssh"}]
    # The Role: exactly what sshpod calls, in its namespace; homes are created, never deleted.
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r["verbs"] for r in objects[("Role", "t-sshpod")]["rules"]}
    assert rules == {
        (("",), ("pods",)): ["create", "get", "list", "watch", "delete"],
        (("",), ("pods/exec", "pods/attach", "pods/portforward")): ["get", "create"],
        (("coordination.k8s.io",), ("leases",)): ["create", "get", "update", "list", "delete"],
        (("",), ("persistentvolumeclaims",)): ["create"],
    }, rules
    # Login pods: in the release's namespace, isolated by the NetworkPolicy, not the Deployment's.
    config = config_of(objects)
    login_labels = config["kubernetes"]["pod"]["metadata"]["labels"]
    policy = objects[("NetworkPolicy", "t-sshpod-logins")]["spec"]
    assert policy["podSelector"]["matchLabels"] == login_labels and policy["ingress"] == []
    selector = objects[("Deployment", "t-sshpod")]["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= login_labels.items(), (selector, login_labels)
    assert config["kubernetes"]["pod"]["metadata"]["namespace"] == "class"
    assert "trustedUserCAKeys" not in config["auth"]["publicKey"]


def test_the_seed_values_of_a_class_map_onto_sshpods_configuration(tmp_path):
    objects = valid("class", tmp_path)
    seed = yaml.safe_load((VALUES / "class.yaml").read_text())
    config = config_of(objects)
    assert config["identity"] == {"enable": True, "uid": 10000, "sudo": True, "hostname": "cis90"}
    homes = config["homes"]
    assert (homes["size"], homes["storageClassName"], homes["gracePeriod"]) == ("5Gi", "ssd", "10m")
    assert (homes["customizeRepo"], homes["customizeRepoCommand"], homes["customizeCommand"]) == \
        (seed["customizeRepo"], seed["customizeRepoCommand"], seed["customizeCommand"])
    assert config["log"]["level"] == "debug"
    pod = config["kubernetes"]["pod"]
    assert pod["mode"] == "user"
    assert pod["spec"]["containers"] == [{"name": "shell", "image": "registry.example.org/cis90/workstation:2026",
                                          "imagePullPolicy": "Always"}]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry-credentials"}]
    # The teacher's key as their authorized_keys; the CA's public key as the trusted CA.
    assert objects[("ConfigMap", "t-sshpod-authorized-keys")]["data"] == {"teacher": seed["userSSHKey"] + "\n"}
    assert config["auth"]["publicKey"]["trustedUserCAKeys"] == "/etc/sshpod/ca/ca_key_pub"
    ca = objects[("Secret", "t-sshpod-ca")]["data"]
    assert list(ca) == ["ca_key_pub"] and base64.b64decode(ca["ca_key_pub"]).decode() == seed["ssh"]["ca_key_pub"]
    # `privileged: true` is sudo in the login pods, never a privileged container.
    assert '"privileged": true' not in json.dumps(list(objects.values()))


def test_replicas_with_existing_secrets_render_no_secret_of_their_own(tmp_path):
    objects = valid("replicas", tmp_path)
    assert [k for k in objects if k[0] == "Secret"] == []
    assert ("NetworkPolicy", "t-sshpod-logins") not in objects
    assert objects[("Deployment", "t-sshpod")]["spec"]["replicas"] == 3
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    assert volumes["hostkey"]["secret"]["secretName"] == "class-hostkeys"
    assert volumes["ca"]["secret"]["secretName"] == "class-ca"
    assert volumes["ca"]["secret"]["items"] == [{"key": "ca_key_pub", "path": "ca_key_pub"}]
    # The revoked keys: a Secret of the teacher's, mounted where the configuration reads them.
    assert volumes["revoked"]["secret"] == {"secretName": "class-revoked",
                                            "items": [{"key": "revoked_keys", "path": "revoked_keys"}]}
    [server] = pod_spec(objects)["containers"]
    assert {"name": "revoked", "mountPath": "/etc/sshpod/revoked"} in server["volumeMounts"]
    assert config_of(objects)["auth"]["publicKey"]["revokedKeys"] == "/etc/sshpod/revoked/revoked_keys"
    assert objects[("Service", "t-sshpod")]["spec"]["type"] == "ClusterIP"
    budget = objects[("PodDisruptionBudget", "t-sshpod")]["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"] == objects[("Deployment", "t-sshpod")]["spec"]["selector"]["matchLabels"]


def test_extra_mounts_take_the_seeds_class_name_and_sshpods_scopes(tmp_path):
    config = config_of(valid("extra-mounts", tmp_path))
    assert config["homes"]["extraMounts"] == [
        {"name": "cis90", "path": "/home/cis90", "size": "1Gi", "storageClassName": "hdd"},
        {"name": "cis91", "path": "/home/cis91", "size": "1Gi", "storageClassName": "hdd", "scope": "perUser"},
        {"name": "datasets", "path": "/data", "storageClassName": "nfs", "scope": "shared", "readOnly": True},
    ]


def test_the_chart_refuses_a_ca_private_key_and_unknown_values(tmp_path):
    # The seed's own command line, private key included.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-f", str(tmp_path / "ca_key"), "-N", ""], check=True)
    out = helm("template", "myserver", str(CHART), "--set", "user=student",
               "--set-file", f"ssh.ca_key={tmp_path / 'ca_key'},ssh.ca_key_pub={tmp_path / 'ca_key.pub'}")
    assert out.returncode == 1 and out.stdout == "", out
    assert "ssh.ca_key is refused: sshpod needs only the CA's public key (ssh.ca_key_pub)" in out.stderr, out.stderr
    assert "PRIVATE KEY" not in out.stderr
    out = helm("template", "t", str(CHART), "--set", "homesize=1Gi")
    assert out.returncode == 1 and "Additional property homesize is not allowed" in out.stderr, out.stderr


# The walk-through. kube-sim routes no Services, so the logins go to the replica's pod IP and
# port 2222 where the README says ADDRESS; the host key is remembered under the release's name
# (HostKeyAlias), as the pod's address changes with the reinstall. `--wait` is not used: Helm's
# readiness check reads a Deployment's ReplicaSets, which kube-sim's controller does without,
# and waits for a Service's cluster IP, which kube-sim does not allocate; the test waits on the
# Deployment's readyReplicas instead.

def answers_ready(ip: str) -> bool:
    """Whether the replica at `ip` answers its readiness probe's request (kube-sim runs no probes)."""
    try:
        with urllib.request.urlopen(f"http://{ip}:7000/readyz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def ready_servers(ks, replicas: int = 1) -> list[dict]:
    """The release's sshpod replicas once the Deployment reports them all and each answers
    /readyz, else []."""
    deployment = json.loads(ks.kubectl("get", "deployment", "-n", "class", "-o", "json").stdout)["items"]
    if len(deployment) != 1 or deployment[0].get("status", {}).get("readyReplicas") != replicas:
        return []
    pods = [p for p in get_json(ks, "pods", "-n", "class", "-l", SERVER_SELECTOR)["items"]
            if "deletionTimestamp" not in p["metadata"] and p["status"].get("podIP")]
    if len(pods) != replicas or not all(answers_ready(p["status"]["podIP"]) for p in pods):
        return []
    return pods


@pytest.mark.timeout(600)
def test_the_class_walk_through_on_kubernetes(scn, ks, tmp_path):
    repository = build_image(scn)
    env = {**ks.env, "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
           "HELM_CONFIG_HOME": str(tmp_path / "helm-config"), "HELM_DATA_HOME": str(tmp_path / "helm-data")}

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run(list(args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    # The README's commands; the image flags point the chart at the binary under test.
    install = [str(HELM), "install", "myclass", str(CHART), "--namespace", "class", "--create-namespace",
               "--set-file", "ssh.ca_key_pub=ca_key.pub",
               "--set", f"server.image.repository={repository},server.image.tag=latest"]
    run("ssh-keygen", "-t", "ed25519", "-f", "ca_key", "-N", "", "-C", "class-ca")
    run("ssh-keygen", "-t", "ed25519", "-f", "student", "-N", "", "-C", "student")
    run("ssh-keygen", "-s", "ca_key", "-I", "student-fall-2026", "-n", "student", "-V", "+1h", "student.pub")
    assert (tmp_path / "student-cert.pub").is_file()
    installed = run(*install)
    assert "STATUS: deployed" in installed.stdout, installed.stdout
    service = run("kubectl", "-n", "class", "get", "service", "myclass-sshpod").stdout
    assert service.splitlines()[1].split()[0] == "myclass-sshpod", service

    def login(command: str, strict: str) -> subprocess.CompletedProcess:
        try:
            server = h.wait_until(lambda: ready_servers(ks), 120, "the sshpod replica to be ready")[0]
        except h.WaitTimeout:
            raise AssertionError(ks.kubectl("get", "pods", "-A", "-o", "yaml").stdout + ks.logs()[-5000:])
        return run("ssh", "-o", "CertificateFile=student-cert.pub", "-i", "student",
                   "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=known_hosts",
                   "-o", f"StrictHostKeyChecking={strict}", "-o", "HostKeyAlias=myclass",
                   "-p", "2222", f"student@{server['status']['podIP']}", command, timeout=180)

    status, listed = ks.request("GET", "/api/v1/namespaces/class/pods")
    assert status == 200, listed
    before = listed["metadata"]["resourceVersion"]
    first = login("whoami; echo $HOME; pwd; echo kept > notes.txt", strict="accept-new")
    assert first.stdout.split() == ["student", "/home/student", "/home/student"], first
    known_hosts = (tmp_path / "known_hosts").read_text()
    assert len(known_hosts.splitlines()) == 1 and " ssh-ed25519 " in known_hosts, known_hosts
    run("ssh-keygen", "-F", "myclass", "-f", "known_hosts")

    # The student's home claim, made by sshpod at the login, was mounted in their login pod.
    claims = get_json(ks, "pvc", "-n", "class", "-l", "sshpod.home=home,sshpod.user=student")["items"]
    assert len(claims) == 1, claims
    claim = claims[0]["metadata"]["name"]
    path = f"/api/v1/namespaces/class/pods?watch=true&resourceVersion={before}&timeoutSeconds=1"
    login_pods = [e["object"] for e in ks.watch_lines(path) if e["type"] == "ADDED"
                  and e["object"]["metadata"]["labels"].get("app.kubernetes.io/component") == "login"]
    assert len(login_pods) == 1, login_pods
    volumes = login_pods[0]["spec"]["volumes"]
    assert [v["persistentVolumeClaim"] for v in volumes if "persistentVolumeClaim" in v] \
        == [{"claimName": claim, "readOnly": False}], volumes

    # Uninstall: the release's objects go; the home and the host keys stay.
    uninstalled = run(str(HELM), "uninstall", "myclass", "--namespace", "class")
    assert "These resources were kept due to the resource policy:\n[Secret] myclass-sshpod-hostkeys" \
        in uninstalled.stdout, uninstalled.stdout
    h.wait_until(lambda: not get_json(ks, "pods", "-n", "class")["items"], 60, "the release's pods to go")
    assert get_json(ks, "deployments", "-n", "class")["items"] == []
    assert [c["metadata"]["name"] for c in get_json(ks, "pvc", "-n", "class")["items"]] == [claim]
    assert [s["metadata"]["name"] for s in get_json(ks, "secrets", "-n", "class")["items"]] \
        == ["myclass-sshpod-hostkeys"]

    # Reinstalled: the same host key (known_hosts unchanged, checked strictly), the same home.
    run(*install)
    again = login("cat notes.txt", strict="yes")
    assert again.stdout == "kept\n", again
    assert (tmp_path / "known_hosts").read_text() == known_hosts

    # Deleting a home, the README's last step; then everything else.
    deleted = run("kubectl", "-n", "class", "delete", "pvc", "-l", "sshpod.home=home,sshpod.user=student")
    assert deleted.stdout == f'persistentvolumeclaim "{claim}" deleted\n', deleted.stdout
    run(str(HELM), "uninstall", "myclass", "--namespace", "class")
    run("kubectl", "-n", "class", "delete", "secret", "myclass-sshpod-hostkeys")
    run("kubectl", "delete", "namespace", "class", timeout=180)
    h.wait_until(lambda: not kubesim.docker_ids("volume", ks.instance), 60, "the home's volume to go")


@pytest.mark.timeout(420)
def test_replicas_present_one_host_key_and_hold_a_lease_each(scn, ks, tmp_path):
    repository = build_image(scn)
    env = {**ks.env, "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
           "HELM_CONFIG_HOME": str(tmp_path / "helm-config"), "HELM_DATA_HOME": str(tmp_path / "helm-data")}
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-f", str(tmp_path / "ca_key"), "-N", ""], check=True)

    def install(replicas: int) -> list[dict]:
        installed = helm("install", "myclass", str(CHART), "--namespace", "class", "--create-namespace",
                         "--set-file", f"ssh.ca_key_pub={tmp_path / 'ca_key.pub'}",
                         "--set", f"replicaCount={replicas},server.image.repository={repository}",
                         "--set", "server.image.tag=latest,config.kubernetes.timeouts.instanceLease=3s", env=env)
        assert installed.returncode == 0, installed.stderr
        try:
            return h.wait_until(lambda: ready_servers(ks, replicas), 120, f"{replicas} sshpod replicas to be ready")
        except h.WaitTimeout:
            raise AssertionError(ks.kubectl("get", "pods", "-A", "-o", "yaml").stdout + ks.logs()[-5000:])

    def holders() -> set[str]:
        return {lease["spec"]["holderIdentity"] for lease in get_json(ks, "leases", "-n", "class")["items"]}

    servers = install(2)
    keys = {h.wait_until(lambda: host_key_of(s["status"]["podIP"]), 30, "the replica to listen") for s in servers}
    assert len(keys) == 1, keys
    # Each replica holds its instance Lease in the namespace the login pods run in.
    first = h.wait_until(lambda: holders() if len(holders()) == 2 else set(), 30, "a Lease per replica")
    uninstalled = helm("uninstall", "myclass", "--namespace", "class", env=env)
    assert uninstalled.returncode == 0, uninstalled.stderr
    h.wait_until(lambda: not get_json(ks, "pods", "-n", "class")["items"], 60, "the replicas to go")
    # Helm deletes the Role while the replicas drain, so their Leases may outlive them; the next
    # install's replica takes them for dead and removes them.
    install(1)
    h.wait_until(lambda: len(holders()) == 1 and not holders() & first, 60,
                 "the uninstalled replicas' Leases to be swept")
    assert helm("uninstall", "myclass", "--namespace", "class", env=env).returncode == 0
    ks.kubectl("-n", "class", "delete", "secret", "myclass-sshpod-hostkeys")
    ks.kubectl("delete", "namespace", "class", timeout=180)
