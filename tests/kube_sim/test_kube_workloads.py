"""The kinds a deployment like deploy/kubernetes needs: ConfigMaps, Secrets, ServiceAccounts
(with their tokens, authorized by Roles and RoleBindings), Services, NetworkPolicies and
PodDisruptionBudgets (stored, with a warning), Deployments (the controller), and pods that mount
configMap, secret and service-account volumes; and what Helm needs beside them: Secrets and
ConfigMaps replaced with PUT (Helm's release records). Checked with the official Python client,
kubectl 1.32 and raw requests."""

from __future__ import annotations

import base64
import json
import textwrap

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kubesim


@pytest.fixture
def ns(ks, name):
    """A namespace of its own for one test, deleted (with everything in it) at the end."""
    ks.client().create_namespace({"metadata": {"name": name}})
    yield name
    status, _ = ks.request("DELETE", f"/api/v1/namespaces/{name}")
    assert status in (200, 404)
    kubesim.wait_until(lambda: kubesim.namespace_gone(ks.client(), name), 60, f"namespace {name} to go")


def status_of(e: ApiException) -> dict:
    return json.loads(e.body)


def test_config_maps_and_secrets_crud_and_status_bodies(ks, ns):
    api = ks.client()
    api.create_namespaced_config_map(ns, {"metadata": {"name": "settings"}, "data": {"a.yaml": "x: 1\n"}})
    assert api.read_namespaced_config_map("settings", ns).data == {"a.yaml": "x: 1\n"}
    names = [c.metadata.name for c in api.list_namespaced_config_map(ns).items]
    assert names == ["kube-root-ca.crt", "settings"]  # every namespace publishes the cluster CA
    with pytest.raises(ApiException) as exists:
        api.create_namespaced_config_map(ns, {"metadata": {"name": "settings"}})
    assert exists.value.status == 409
    assert status_of(exists.value) | {"details": None} == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "AlreadyExists",
        "message": 'configmaps "settings" already exists', "code": 409, "details": None}
    with pytest.raises(ApiException) as invalid:
        api.create_namespaced_config_map(ns, {"metadata": {"name": "bad"}, "data": {"a/b": ""}})
    assert invalid.value.status == 422
    assert status_of(invalid.value)["details"]["causes"][0]["field"] == "data[a/b]"

    api.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "stringData": {"user": "alice"}})
    secret = api.read_namespaced_secret("creds", ns)
    assert (secret.type, secret.data, secret.string_data) == ("Opaque", {"user": base64.b64encode(b"alice").decode()},
                                                              None)
    status, body = ks.request("POST", f"/api/v1/namespaces/{ns}/secrets",
                              {"metadata": {"name": "broken"}, "data": {"k": "not base64!"}})
    assert (status, body["reason"]) == (400, "BadRequest"), body
    assert body["message"].startswith('Secret in version "v1" cannot be handled as a Secret'), body

    deleted = api.delete_namespaced_secret("creds", ns)  # a Status, which this client hands back as a dict
    assert (deleted["status"], deleted["details"]["name"], deleted["details"]["kind"]) == ("Success", "creds",
                                                                                         "secrets")
    with pytest.raises(ApiException) as missing:
        api.read_namespaced_secret("creds", ns)
    assert missing.value.status == 404
    assert status_of(missing.value)["message"] == 'secrets "creds" not found'
    assert status_of(missing.value)["details"] == {"name": "creds", "kind": "secrets"}


def test_kubectl_creates_secrets_config_maps_and_service_accounts(ks, ns, tmp_path):
    """kubectl's typed `create` commands send protobuf, which kube-sim decodes for these kinds."""
    (tmp_path / "key").write_bytes(b"\x00binary\xff")
    assert ks.kubectl("-n", ns, "create", "secret", "generic", "hostkey", f"--from-file={tmp_path / 'key'}",
                      "--from-literal=user=alice").stdout == "secret/hostkey created\n"
    data = json.loads(ks.kubectl("-n", ns, "get", "secret", "hostkey", "-o", "json").stdout)["data"]
    assert base64.b64decode(data["key"]) == b"\x00binary\xff"
    assert base64.b64decode(data["user"]) == b"alice"
    ks.kubectl("-n", ns, "create", "configmap", "cm", "--from-literal=greeting=hello")
    assert ks.client().read_namespaced_config_map("cm", ns).data == {"greeting": "hello"}
    ks.kubectl("-n", ns, "create", "serviceaccount", "robot")
    assert ks.client().read_namespaced_service_account("robot", ns).metadata.name == "robot"
    # What it cannot decode it refuses, saying so.
    refused = ks.kubectl("-n", ns, "create", "deployment", "web", "--image=x", check=False)
    assert refused.returncode == 1
    assert "kube-sim decodes application/vnd.kubernetes.protobuf only for" in refused.stderr, refused.stderr


def test_services_and_network_policies_are_stored_with_a_warning(ks, ns, tmp_path):
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          type: LoadBalancer
          selector: {app: web}
          ports: [{name: ssh, port: 22, targetPort: ssh}]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: isolate}
        spec: {podSelector: {}, policyTypes: [Ingress]}
        """))
    created = ks.kubectl("-n", ns, "apply", "-f", str(manifest))
    assert created.stdout.splitlines() == ["service/web created",
                                           "networkpolicy.networking.k8s.io/isolate created"], created
    assert "kube-sim does not implement Services" in created.stderr
    assert "kube-sim does not enforce NetworkPolicies" in created.stderr
    service = ks.client().read_namespaced_service("web", ns)
    assert (service.spec.type, service.spec.ports[0].protocol, service.spec.cluster_ip) == ("LoadBalancer", "TCP",
                                                                                           None)
    policies = client.NetworkingV1Api(ks.api_client()).list_namespaced_network_policy(ns).items
    assert [p.metadata.name for p in policies] == ["isolate"]
    # A changed object cannot be applied again (no PATCH): kube-sim says so.
    manifest.write_text(manifest.read_text().replace("port: 22", "port: 2222"))
    again = ks.kubectl("-n", ns, "apply", "-f", str(manifest), check=False)
    assert again.returncode == 1
    assert "kube-sim does not emulate PATCH" in again.stderr, again.stderr
    ks.kubectl("-n", ns, "delete", "-f", str(manifest))
    assert ks.client().list_namespaced_service(ns).items == []


def test_pod_disruption_budgets_are_stored_with_a_warning_and_validated(ks, ns, tmp_path):
    groups = [g["name"] for g in ks.request("GET", "/apis")[1]["groups"]]
    assert "policy" in groups, groups
    manifest = tmp_path / "pdb.yaml"
    manifest.write_text(textwrap.dedent("""\
        apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata: {name: web}
        spec:
          maxUnavailable: 1
          selector: {matchLabels: {app: web}}
        """))
    created = ks.kubectl("-n", ns, "create", "-f", str(manifest))
    assert created.stdout == "poddisruptionbudget.policy/web created\n", created
    assert "kube-sim has no eviction API: this PodDisruptionBudget is stored only" in created.stderr
    listed = ks.kubectl("-n", ns, "get", "pdb", "-o", "name").stdout
    assert listed == "poddisruptionbudget.policy/web\n", listed
    policy = client.PolicyV1Api(ks.api_client())
    budget = policy.read_namespaced_pod_disruption_budget("web", ns)
    assert (budget.spec.max_unavailable, budget.spec.selector.match_labels) == (1, {"app": "web"})
    with pytest.raises(ApiException) as both:
        policy.create_namespaced_pod_disruption_budget(
            ns, {"metadata": {"name": "both"}, "spec": {"minAvailable": 1, "maxUnavailable": "150%"}})
    assert both.value.status == 422
    assert [c["field"] for c in status_of(both.value)["details"]["causes"]] == ["spec", "spec.maxUnavailable"]
    ks.kubectl("-n", ns, "delete", "pdb", "web")
    assert policy.list_namespaced_pod_disruption_budget(ns).items == []


def test_secrets_and_config_maps_are_replaced_with_put(ks, ns, tmp_path):
    api = ks.client()
    api.create_namespaced_secret(ns, {"metadata": {"name": "release", "labels": {"owner": "helm"}},
                                      "type": "helm.sh/release.v1", "stringData": {"release": "v1"}})
    stored = api.read_namespaced_secret("release", ns)
    # The Python client's replace: new data and labels, the same uid, a new resourceVersion.
    stored.data = {"release": base64.b64encode(b"v2").decode()}
    stored.metadata.labels = {"owner": "helm", "status": "deployed"}
    replaced = api.replace_namespaced_secret("release", ns, stored)
    assert (replaced.metadata.uid, replaced.metadata.labels["status"]) == (stored.metadata.uid, "deployed")
    assert replaced.metadata.resource_version != stored.metadata.resource_version
    assert [s.metadata.name for s in api.list_namespaced_secret(ns, label_selector="status=deployed").items] \
        == ["release"]
    # A stale resourceVersion conflicts; a changed type is refused; a missing object is not created.
    with pytest.raises(ApiException) as stale:
        api.replace_namespaced_secret("release", ns, stored)
    assert stale.value.status == 409
    replaced.type = "Opaque"
    with pytest.raises(ApiException) as typed:
        api.replace_namespaced_secret("release", ns, replaced)
    assert typed.value.status == 422 and status_of(typed.value)["details"]["causes"][0]["field"] == "type"
    with pytest.raises(ApiException) as missing:
        api.replace_namespaced_secret("nothing", ns, {"metadata": {"name": "nothing"}})
    assert missing.value.status == 404
    # kubectl replace of a ConfigMap (a body without a resourceVersion overwrites).
    api.create_namespaced_config_map(ns, {"metadata": {"name": "settings"}, "data": {"a": "1"}})
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '2'}\n")
    out = ks.kubectl("-n", ns, "replace", "-f", str(manifest))
    assert out.stdout == "configmap/settings replaced\n", out
    assert api.read_namespaced_config_map("settings", ns).data == {"a": "2"}


def deployment(name: str, replicas: int = 2, **spec) -> dict:
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "main", "image": kubesim.GUEST_IMAGE,
                                                       "command": ["sleep", "300"]}]}}},
    }
    body["spec"]["template"]["spec"].update(spec)
    return body


def ready_pods(ks, ns: str, name: str) -> list:
    """The Deployment's pods once it reports every replica ready and available, else []."""
    d = client.AppsV1Api(ks.api_client()).read_namespaced_deployment(name, ns)
    if d.status.ready_replicas != d.spec.replicas or d.status.available_replicas != d.spec.replicas:
        return []
    return [p for p in ks.client().list_namespaced_pod(ns, label_selector=f"app={name}").items
            if p.metadata.deletion_timestamp is None]


def test_the_deployment_controller_keeps_its_replicas(ks, ns, name):
    apps = client.AppsV1Api(ks.api_client())
    created = apps.create_namespaced_deployment(ns, deployment(name))
    assert created.spec.strategy.type == "RollingUpdate"
    rollout = ks.kubectl("-n", ns, "rollout", "status", f"deployment/{name}", "--timeout=60s")
    assert rollout.stdout.splitlines()[-1] == f'deployment "{name}" successfully rolled out', rollout
    pods = kubesim.wait_until(lambda: ready_pods(ks, ns, name), 60, "2 ready replicas")
    assert len(pods) == 2
    for pod in pods:
        ref = pod.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Deployment", name, created.metadata.uid, True)
        template_hash = pod.metadata.labels["pod-template-hash"]
        assert pod.metadata.name.startswith(f"{name}-{template_hash}-")
        assert pod.status.phase == "Running"
    available = next(c for c in apps.read_namespaced_deployment(name, ns).status.conditions if c.type == "Available")
    assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable")
    table = ks.kubectl("-n", ns, "get", "deployment", name).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == [name, "2/2", "2", "2"]

    # A deleted replica is replaced.
    gone = pods[0].metadata.name
    ks.client().delete_namespaced_pod(gone, ns, grace_period_seconds=0)
    replaced = kubesim.wait_until(lambda: [p for p in ready_pods(ks, ns, name) if p.metadata.name != gone], 60,
                                  "a replacement replica")
    assert len(replaced) == 2

    # Deleting the Deployment takes its pods with it (background propagation).
    deleted = apps.delete_namespaced_deployment(name, ns)
    assert (deleted["status"], deleted["details"]["group"], deleted["details"]["kind"]) == ("Success", "apps",
                                                                                          "deployments")
    kubesim.wait_until(lambda: not ks.client().list_namespaced_pod(ns, label_selector=f"app={name}").items, 60,
                       "the Deployment's pods to go")
    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment(name, ns)
    assert status_of(missing.value)["message"] == f'deployments.apps "{name}" not found'


def test_deployments_are_validated(ks, ns, name):
    body = deployment(name)
    body["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    status, answer = ks.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body)
    assert status == 422, answer
    assert answer["message"].startswith(f'Deployment.apps "{name}" is invalid: spec.template.metadata.labels'), answer
    assert answer["details"]["causes"][0]["field"] == "spec.template.metadata.labels"


def test_service_account_tokens_are_mounted_and_authorized_by_role_bindings(ks, ns, name):
    api = ks.client()
    rbac = client.RbacAuthorizationV1Api(ks.api_client())
    api.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    rbac.create_namespaced_role(ns, {"metadata": {"name": "pod-reader"},
                                     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "robot-reads-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}]})
    with pytest.raises(ApiException) as no_account:
        api.create_namespaced_pod(ns, kubesim.pod("orphan", ["sleep", "300"], serviceAccountName="nobody"))
    assert no_account.value.status == 403
    assert 'serviceaccount "nobody" not found' in status_of(no_account.value)["message"]

    api.create_namespaced_pod(ns, kubesim.pod(name, ["sleep", "300"], serviceAccountName="robot"))
    kubesim.wait_for_pod(api, ns, name, kubesim.running)
    directory = "/var/run/secrets/kubernetes.io/serviceaccount"
    read = lambda f: ks.kubectl("-n", ns, "exec", name, "--", "cat", f"{directory}/{f}").stdout  # noqa: E731
    token = read("token")
    assert read("namespace") == ns
    assert read("ca.crt") == ks.ca_file.read_text()
    env = ks.kubectl("-n", ns, "exec", name, "--", "sh", "-c",
                     "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT").stdout.strip()
    host, port = env.split(":")
    assert host and int(port) > 0, env

    status, pods = ks.request("GET", f"/api/v1/namespaces/{ns}/pods", token=token)
    assert status == 200 and [p["metadata"]["name"] for p in pods["items"]] == [name]
    status, denied = ks.request("GET", f"/api/v1/namespaces/{ns}/configmaps", token=token)
    assert status == 403
    assert denied["message"] == (f'configmaps is forbidden: User "system:serviceaccount:{ns}:robot" cannot list '
                                 f'resource "configmaps" in API group "" in the namespace "{ns}"')
    status, _ = ks.request("GET", "/api/v1/namespaces/default/pods", token=token)
    assert status == 403
    # Deleting the account revokes its token.
    api.delete_namespaced_service_account("robot", ns)
    status, _ = ks.request("GET", f"/api/v1/namespaces/{ns}/pods", token=token)
    assert status == 401


def test_config_map_and_secret_volumes(ks, ns, name):
    api = ks.client()
    api.create_namespaced_config_map(ns, {"metadata": {"name": "conf"}, "data": {"config.yaml": "a: 1\n", "x": "y"}})
    api.create_namespaced_secret(ns, {"metadata": {"name": "key"}, "stringData": {"id": "secret"}})
    pod = kubesim.pod(name, ["sleep", "300"], securityContext={"runAsUser": 1000, "fsGroup": 2000}, volumes=[
        {"name": "conf", "configMap": {"name": "conf", "items": [{"key": "config.yaml", "path": "sub/c.yaml"}]}},
        {"name": "key", "secret": {"secretName": "key", "defaultMode": 0o400}},
        {"name": "later", "configMap": {"name": "later"}},
        {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
    ])
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "conf", "mountPath": "/etc/conf"}, {"name": "key", "mountPath": "/etc/key"},
        {"name": "later", "mountPath": "/etc/later"}, {"name": "scratch", "mountPath": "/scratch"}]
    api.create_namespaced_pod(ns, pod)
    # A missing ConfigMap keeps the pod in ContainerCreating, saying why, until it exists.
    waiting = kubesim.wait_for_pod(api, ns, name, lambda p: p.status.container_statuses
                                   and p.status.container_statuses[0].state.waiting
                                   and "not found" in (p.status.container_statuses[0].state.waiting.message or ""))
    assert 'configmap "later" not found' in waiting.status.container_statuses[0].state.waiting.message
    api.create_namespaced_config_map(ns, {"metadata": {"name": "later"}, "data": {"k": "v"}})
    kubesim.wait_for_pod(api, ns, name, kubesim.running)
    run = lambda script: ks.kubectl("-n", ns, "exec", name, "--", "sh", "-c", script).stdout  # noqa: E731
    assert run("cat /etc/conf/sub/c.yaml; ls /etc/conf") == "a: 1\nsub\n"
    # defaultMode 0400 plus group read for the fsGroup, which owns the files: uid 1000 reads them.
    assert run("stat -c '%a %g' /etc/key/id; cat /etc/key/id; id -G") == "440 2000\nsecret1000 2000\n"
    assert run("cat /etc/later/k") == "v"
    assert run("touch /etc/conf/new 2>&1 || echo read-only").strip().endswith("read-only")
    # A memory-backed emptyDir is a tmpfs of sizeLimit.
    scratch = run("grep ' /scratch ' /proc/mounts").split()
    assert scratch[2] == "tmpfs" and "size=8192k" in scratch[3], scratch


def test_deleting_a_deployment_with_orphan_keeps_its_pods(ks, ns, name):
    apps = client.AppsV1Api(ks.api_client())
    apps.create_namespaced_deployment(ns, deployment(name, replicas=1))
    [pod] = kubesim.wait_until(lambda: ready_pods(ks, ns, name), 60, "1 ready replica")
    ks.kubectl("-n", ns, "delete", "deployment", name, "--cascade=orphan")
    kept = ks.client().read_namespaced_pod(pod.metadata.name, ns)
    assert kept.metadata.owner_references is None or kept.metadata.owner_references == []
    assert kept.metadata.deletion_timestamp is None
    # Nothing collects it afterwards: once the controller has reconciled the namespace again
    # (another Deployment there is ready), the orphan is still there, not terminating.
    apps.create_namespaced_deployment(ns, deployment(f"{name}-b", replicas=1))
    kubesim.wait_until(lambda: ready_pods(ks, ns, f"{name}-b"), 60, "the other Deployment's replica")
    kept = ks.client().read_namespaced_pod(pod.metadata.name, ns)
    assert kept.metadata.deletion_timestamp is None and kept.status.phase == "Running"
