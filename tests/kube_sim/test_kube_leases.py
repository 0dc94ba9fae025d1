"""`coordination.k8s.io/v1` Leases, as sshpod replicas use them (create, read, list by label,
replace with the current resourceVersion, delete), checked with the official Python client,
kubectl 1.32 and raw requests: discovery, optimistic concurrency, validation, watch."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timezone

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

import kubesim

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


@pytest.fixture
def ns(ks, name):
    """A namespace of its own for one test, deleted (with its leases) at the end."""
    ks.client().create_namespace({"metadata": {"name": name}})
    yield name
    status, _ = ks.request("DELETE", f"/api/v1/namespaces/{name}")
    assert status in (200, 404)


def lease(name: str, holder: str, renewed: datetime, **labels: str) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15,
                                 acquire_time=renewed, renew_time=renewed))


def status_of(e: ApiException) -> dict:
    return json.loads(e.body)


T0 = datetime(2026, 12, 5, 2, 21, 8, 123456, tzinfo=timezone.utc)
T1 = datetime(2026, 12, 5, 2, 21, 13, 654321, tzinfo=timezone.utc)


def test_python_client_create_list_replace_delete(ks, ns):
    api = ks.leases()
    created = api.create_namespaced_lease(ns, lease("sshpod-a", "replica-a", T0, app="sshpod"))
    assert created.api_version == "coordination.k8s.io/v1" and created.kind == "Lease"
    assert created.metadata.uid and created.metadata.namespace == ns
    api.create_namespaced_lease(ns, lease("other", "someone", T0))

    read = api.read_namespaced_lease("sshpod-a", ns)
    assert read.spec.holder_identity == "replica-a"
    assert read.spec.renew_time == T0 and read.spec.lease_duration_seconds == 15
    assert read.metadata.resource_version == created.metadata.resource_version

    listed = api.list_namespaced_lease(ns, label_selector="app=sshpod")
    assert [item.metadata.name for item in listed.items] == ["sshpod-a"]
    assert sorted(item.metadata.name for item in api.list_namespaced_lease(ns).items) == ["other", "sshpod-a"]
    everywhere = api.list_lease_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert sorted(item.metadata.name for item in everywhere.items) == ["other", "sshpod-a"]

    # Renewal: replace with the current resourceVersion.
    read.spec.renew_time = T1
    renewed = api.replace_namespaced_lease("sshpod-a", ns, read)
    assert renewed.spec.renew_time == T1
    assert int(renewed.metadata.resource_version) > int(read.metadata.resource_version)
    assert renewed.metadata.uid == created.metadata.uid
    assert renewed.metadata.creation_timestamp == created.metadata.creation_timestamp

    # `read` still carries the old resourceVersion: somebody else renewed in between.
    read.spec.holder_identity = "replica-b"
    with pytest.raises(ApiException) as stale:
        api.replace_namespaced_lease("sshpod-a", ns, read)
    assert stale.value.status == 409
    body = status_of(stale.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "sshpod-a": the object has been '
        "modified; please apply your changes to the latest version and try again")
    assert body["details"] == {"name": "sshpod-a", "group": "coordination.k8s.io", "kind": "leases"}

    renewed.spec.lease_duration_seconds = 0
    with pytest.raises(ApiException) as invalid:
        api.replace_namespaced_lease("sshpod-a", ns, renewed)
    assert invalid.value.status == 422
    body = status_of(invalid.value)
    assert body["reason"] == "Invalid"
    assert body["message"] == ('Lease.coordination.k8s.io "sshpod-a" is invalid: spec.leaseDurationSeconds: '
                               "Invalid value: 0: must be greater than 0")
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.leaseDurationSeconds",
                                          "message": "Invalid value: 0: must be greater than 0"}]

    # Leases do not allow unconditional updates: no resourceVersion, no update.
    renewed.spec.lease_duration_seconds = 15
    renewed.metadata.resource_version = None
    with pytest.raises(ApiException) as unconditional:
        api.replace_namespaced_lease("sshpod-a", ns, renewed)
    assert unconditional.value.status == 422
    assert "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" \
        in status_of(unconditional.value)["message"]
    assert api.read_namespaced_lease("sshpod-a", ns).spec.renew_time == T1  # none of the failures wrote

    deleted = api.delete_namespaced_lease("sshpod-a", ns)  # a Status, which this client hands back as a dict
    assert deleted["status"] == "Success" and deleted["details"]["uid"] == created.metadata.uid
    with pytest.raises(ApiException) as gone:
        api.read_namespaced_lease("sshpod-a", ns)
    assert gone.value.status == 404
    assert status_of(gone.value)["message"] == 'leases.coordination.k8s.io "sshpod-a" not found'
    with pytest.raises(ApiException) as again:
        api.delete_namespaced_lease("sshpod-a", ns)
    assert again.value.status == 404


def test_python_watch_sees_added_modified_deleted(ks, ns):
    api = ks.leases()
    start = api.list_namespaced_lease(ns).metadata.resource_version
    api.create_namespaced_lease(ns, lease("watched", "a", T0, app="sshpod"))
    api.create_namespaced_lease(ns, lease("unlabelled", "a", T0))
    current = api.read_namespaced_lease("watched", ns)
    current.spec.renew_time = T1
    api.replace_namespaced_lease("watched", ns, current)
    api.delete_namespaced_lease("watched", ns)

    # The watch starts from the list's resourceVersion, so the changes above are replayed.
    seen = []
    w = watch.Watch()
    for event in w.stream(api.list_namespaced_lease, ns, label_selector="app=sshpod",
                          resource_version=start, timeout_seconds=30):
        seen.append((event["type"], event["object"].metadata.name, event["object"].spec.renew_time))
        if event["type"] == "DELETED":
            w.stop()
    assert seen == [("ADDED", "watched", T0), ("MODIFIED", "watched", T1), ("DELETED", "watched", T1)]


def test_namespace_deletion_removes_its_leases(ks, name):
    ks.client().create_namespace({"metadata": {"name": name}})
    api = ks.leases()
    api.create_namespaced_lease(name, lease("inside", "a", T0))
    ks.client().delete_namespace(name)
    with pytest.raises(ApiException) as terminating:
        api.create_namespaced_lease(name, lease("during", "a", T0))
    assert terminating.value.status == 403
    assert status_of(terminating.value)["message"] == \
        f"unable to create new content in namespace {name} because it is being terminated"
    kubesim.wait_until(lambda: kubesim.namespace_gone(ks.client(), name), 30, f"namespace {name} to be removed")
    assert api.list_namespaced_lease(name).items == []
    with pytest.raises(ApiException) as missing:
        api.create_namespaced_lease(name, lease("late", "a", T0))
    assert missing.value.status == 404
    assert status_of(missing.value)["message"] == f'namespaces "{name}" not found'


def test_discovery_lists_the_group(ks):
    api_client = ks.api_client()
    groups = client.ApisApi(api_client).get_api_versions().groups
    coordination = next(g for g in groups if g.name == "coordination.k8s.io")
    assert coordination.preferred_version.group_version == "coordination.k8s.io/v1"
    group = client.CoordinationApi(api_client).get_api_group()
    assert [v.version for v in group.versions] == ["v1"]
    resources = client.CoordinationV1Api(api_client).get_api_resources()
    assert resources.group_version == "coordination.k8s.io/v1"
    (leases,) = resources.resources
    assert (leases.name, leases.kind, leases.namespaced) == ("leases", "Lease", True)
    assert sorted(leases.verbs) == ["create", "delete", "get", "list", "update", "watch"]


def test_put_semantics(ks, ns):
    base = LEASES.format(ns=ns)
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "put"},
            "spec": {"holderIdentity": "a"}}
    # A PUT to a missing lease creates it (the lease strategy allows create-on-update).
    status, created = ks.request("PUT", f"{base}/put", body)
    assert status == 201 and created["metadata"]["uid"]

    status, answer = ks.request("PUT", f"{base}/other", dict(body, metadata={"name": "put"}))
    assert (status, answer["reason"]) == (400, "BadRequest")
    assert answer["message"] == "the name of the object (put) does not match the name on the URL (other)"
    status, answer = ks.request("PUT", f"{base}/put", dict(body, metadata={"name": "put", "namespace": "default"}))
    assert (status, answer["message"]) == (
        400, "the namespace of the provided object does not match the namespace sent on the request")

    # Server-set fields come from the stored lease; an unchanged replace writes nothing.
    same = dict(created, metadata=dict(created["metadata"], creationTimestamp="2000-01-01T00:00:00Z"))
    status, replaced = ks.request("PUT", f"{base}/put", same)
    assert status == 200
    assert replaced["metadata"] == created["metadata"]

    other_uid = dict(created, metadata=dict(created["metadata"], uid="00000000-0000-4000-8000-000000000000"))
    status, answer = ks.request("PUT", f"{base}/put", other_uid)
    assert (status, answer["reason"]) == (409, "Conflict")
    assert "Precondition failed: UID in precondition: 00000000-0000-4000-8000-000000000000" in answer["message"]

    status, answer = ks.request("DELETE", f"{base}/put",
                                {"preconditions": {"resourceVersion": "1"}})
    assert (status, answer["reason"]) == (409, "Conflict")
    status, answer = ks.request("DELETE", f"{base}/put")
    assert (status, answer["kind"], answer["status"]) == (200, "Status", "Success")
    assert answer["details"] == {"name": "put", "group": "coordination.k8s.io", "kind": "leases",
                                 "uid": created["metadata"]["uid"]}

    # Renewing a lease someone deleted: the old body's uid is a precondition nothing matches now;
    # without uid and resourceVersion the PUT creates the lease afresh.
    status, answer = ks.request("PUT", f"{base}/put", created)
    assert (status, answer["reason"]) == (409, "Conflict")
    assert answer["message"].endswith(
        f"Precondition failed: UID in precondition: {created['metadata']['uid']}, UID in object meta: ")
    fresh = dict(created, metadata={"name": "put", "resourceVersion": created["metadata"]["resourceVersion"]})
    status, recreated = ks.request("PUT", f"{base}/put", fresh)
    assert status == 201 and recreated["metadata"]["uid"] != created["metadata"]["uid"]


def test_bodies_are_decoded_as_the_apiserver_does(ks, ns):
    base = LEASES.format(ns=ns)
    spec = {"holderIdentity": "a", "renewTime": "2026-12-05T03:21:08.123456+01:00"}
    status, created = ks.request("POST", base, {"metadata": {"name": "times"}, "spec": spec})
    assert status == 201
    assert created["spec"]["renewTime"] == "2026-12-05T02:21:08.123456Z"  # stored in UTC

    # MicroTime needs exactly six fractional digits: a decoding error, so 400 (not 422).
    spec = {"renewTime": "2026-12-05T02:21:08Z"}
    status, answer = ks.request("POST", base, {"metadata": {"name": "seconds"}, "spec": spec})
    assert (status, answer["reason"]) == (400, "BadRequest")
    assert answer["message"] == (
        'Lease in version "v1" cannot be handled as a Lease: parsing time "2026-12-05T02:21:08Z" as '
        '"2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"')

    status, answer = ks.request("POST", base, {"metadata": {"name": "neg"}, "spec": {"leaseTransitions": -1}})
    assert (status, answer["details"]["causes"][0]["field"]) == (422, "spec.leaseTransitions")
    status, answer = ks.request("POST", base, {"metadata": {"name": "Not_A_Name"}})
    assert (status, answer["details"]["causes"][0]["field"]) == (422, "metadata.name")

    # Unknown fields: dropped by default, refused with fieldValidation=Strict.
    status, created = ks.request("POST", base, {"metadata": {"name": "extra"}, "spec": {"colour": "red"}})
    assert (status, created["spec"]) == (201, {})
    status, answer = ks.request("POST", base + "?fieldValidation=Strict",
                                {"metadata": {"name": "strict"}, "spec": {"colour": "red"}})
    assert (status, answer["message"]) == (
        400, 'Lease in version "v1" cannot be handled as a Lease: strict decoding error: unknown field "spec.colour"')

    status, answer = ks.request("POST", base, dict(created, metadata={"name": "copied", "resourceVersion": "5"}))
    assert (status, answer["message"]) == (500, "resourceVersion should not be set on objects to be created")
    status, answer = ks.request("POST", base, {"metadata": {"name": "times"}})
    assert (status, answer["message"]) == (409, 'leases.coordination.k8s.io "times" already exists')


def test_kubectl_create_get_delete(ks, ns, tmp_path):
    manifest = tmp_path / "lease.yaml"
    manifest.write_text(textwrap.dedent(f"""\
        apiVersion: coordination.k8s.io/v1
        kind: Lease
        metadata:
          name: sshpod-k
          namespace: {ns}
          labels: {{app: sshpod}}
        spec:
          holderIdentity: replica-k
          leaseDurationSeconds: 15
          renewTime: 2026-12-05T02:21:08.123456Z
        """))
    assert ks.kubectl("create", "-f", str(manifest)).stdout.strip() == "lease.coordination.k8s.io/sshpod-k created"

    header, *rows = ks.kubectl("get", "leases", "-n", ns).stdout.splitlines()
    assert header.split() == ["NAME", "HOLDER", "AGE"]
    assert [r.split()[:2] for r in rows] == [["sshpod-k", "replica-k"]]
    assert ks.kubectl("get", "lease", "sshpod-k", "-n", ns, "--no-headers").stdout.split()[:2] \
        == ["sshpod-k", "replica-k"]
    assert ks.kubectl("get", "leases", "-n", ns, "-l", "app=other", "-o", "name").stdout == ""

    fetched = json.loads(ks.kubectl("get", "lease", "sshpod-k", "-n", ns, "-o", "json").stdout)
    assert fetched["apiVersion"] == "coordination.k8s.io/v1" and fetched["kind"] == "Lease"
    assert fetched["spec"] == {"holderIdentity": "replica-k", "leaseDurationSeconds": 15,
                               "renewTime": "2026-12-05T02:21:08.123456Z"}
    assert fetched["metadata"]["labels"] == {"app": "sshpod"}

    # kubectl validates on the server (fieldValidation=Strict); --validate=warn lets it through.
    typo = tmp_path / "typo.yaml"
    typo.write_text(manifest.read_text().replace("name: sshpod-k", "name: typo").replace("holderIdentity", "holder"))
    refused = ks.kubectl("create", "-f", str(typo), check=False)
    assert refused.returncode == 1
    assert 'strict decoding error: unknown field "spec.holder"' in refused.stderr
    warned = ks.kubectl("create", "-f", str(typo), "--validate=warn")
    assert 'unknown field "spec.holder"' in warned.stderr

    assert ks.kubectl("delete", "lease", "sshpod-k", "-n", ns).stdout.strip() \
        == 'lease.coordination.k8s.io "sshpod-k" deleted'
    gone = ks.kubectl("get", "lease", "sshpod-k", "-n", ns, check=False)
    assert gone.returncode == 1
    assert 'leases.coordination.k8s.io "sshpod-k" not found' in gone.stderr


def test_restricted_token_leases_stay_in_its_namespace(ks, name):
    api = ks.leases("kube-sim-restricted")
    own = ks.restricted_namespace
    api.create_namespaced_lease(own, lease(name, "restricted", T0))
    assert name in [item.metadata.name for item in api.list_namespaced_lease(own).items]
    with pytest.raises(ApiException) as denied:
        api.list_namespaced_lease("default")
    assert denied.value.status == 403
    assert status_of(denied.value)["message"] == (
        'leases.coordination.k8s.io is forbidden: User "restricted" cannot list resource "leases" '
        'in API group "coordination.k8s.io" in the namespace "default"')
    api.delete_namespaced_lease(name, own)
