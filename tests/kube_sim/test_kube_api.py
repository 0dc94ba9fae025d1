"""API behaviour: authentication and authorization, Status bodies, pod status from the
engine (missing images), PVCs and namespaces, watch semantics, graceful delete, shutdown."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

import kubesim


def test_anonymous_requests_are_unauthorized(ks):
    status, body = ks.request("GET", "/api/v1/namespaces/default/pods", token=None)
    assert status == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401
    status, body = ks.request("GET", "/api/v1/pods", token="not-a-token")
    assert status == 401
    result = ks.kubectl("get", "pods", "--token=nope", check=False)
    assert "You must be logged in to the server" in result.stderr


def test_restricted_token_stays_in_its_namespace(ks):
    api = ks.client("kube-sim-restricted")
    assert api.list_namespaced_pod(ks.restricted_namespace).items == []
    with pytest.raises(ApiException) as denied:
        api.list_namespaced_pod("default")
    assert denied.value.status == 403
    body = __import__("json").loads(denied.value.body)
    assert body["reason"] == "Forbidden"
    assert 'User "restricted" cannot list resource "pods"' in body["message"]
    status, _ = ks.request("GET", "/api/v1/namespaces", token=ks.restricted_token)
    assert status == 403


def test_status_bodies(ks, name):
    status, body = ks.request("GET", "/api/v1/namespaces/default/pods/nope")
    assert (status, body["reason"], body["message"]) == (404, "NotFound", 'pods "nope" not found')
    assert body["details"] == {"name": "nope", "kind": "pods"}

    manifest = kubesim.pod(name, ["sleep", "300"])
    status, _ = ks.request("POST", "/api/v1/namespaces/default/pods", manifest)
    assert status == 201
    status, body = ks.request("POST", "/api/v1/namespaces/default/pods", manifest)
    assert (status, body["reason"], body["message"]) == (409, "AlreadyExists", f'pods "{name}" already exists')

    status, body = ks.request("POST", "/api/v1/namespaces/default/pods", kubesim.pod("Bad_Name", ["true"]))
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"

    status, body = ks.request("POST", "/api/v1/namespaces/nowhere/pods", kubesim.pod("x", ["true"]))
    assert (status, body["message"]) == (404, 'namespaces "nowhere" not found')

    status, body = ks.request("GET", "/api/v1/namespaces/default/pods?labelSelector=a+in+b")
    assert (status, body["reason"]) == (400, "BadRequest")

    status, body = ks.request("GET", f"/api/v1/namespaces/default/pods/{name}/exec?command=true")
    assert (status, body["reason"]) == (400, "BadRequest")  # not a WebSocket upgrade

    status, body = ks.request("DELETE", f"/api/v1/namespaces/default/pods/{name}", {"gracePeriodSeconds": 0})
    assert status == 200 and body["kind"] == "Pod"


def test_generate_name_and_selectors(ks):
    api = ks.client()
    manifest = kubesim.pod("", ["sleep", "300"])
    manifest["metadata"] = {"generateName": "gen-", "labels": {"tier": "gen-test"}}
    created = api.create_namespaced_pod("default", manifest)
    assert created.metadata.name.startswith("gen-") and len(created.metadata.name) == 9
    assert [p.metadata.name for p in api.list_namespaced_pod("default", label_selector="tier in (gen-test)").items] \
        == [created.metadata.name]
    assert api.list_namespaced_pod("default", label_selector="tier,tier!=gen-test").items == []
    assert [p.metadata.name for p in api.list_pod_for_all_namespaces(
        field_selector=f"metadata.name={created.metadata.name}").items] == [created.metadata.name]
    api.delete_namespaced_pod(created.metadata.name, "default", grace_period_seconds=0)


def test_missing_image_errimagepull_then_backoff(ks, name):
    api = ks.client()
    api.create_namespaced_pod("default", kubesim.pod(name, ["true"], image="kube-sim-test/not-here:1.0"))

    def waiting(reason):
        def check(p):
            statuses = p.status.container_statuses or []
            return bool(statuses) and statuses[0].state.waiting is not None \
                and statuses[0].state.waiting.reason == reason
        return check

    pod = kubesim.wait_for_pod(api, "default", name, waiting("ErrImagePull"))
    assert pod.status.phase == "Pending"
    kubesim.wait_for_pod(api, "default", name, waiting("ImagePullBackOff"))
    row = ks.kubectl("get", "pod", name).stdout.splitlines()[1].split()
    assert row[2] == "ImagePullBackOff"
    api.delete_namespaced_pod(name, "default")


def test_exit_codes_give_succeeded_and_failed(ks, name):
    api = ks.client()
    api.create_namespaced_pod("default", kubesim.pod(name + "-ok", ["true"], restartPolicy="Never"))
    api.create_namespaced_pod("default", kubesim.pod(name + "-bad", ["sh", "-c", "exit 4"], restartPolicy="Never"))
    done = lambda p: p.status.phase in ("Succeeded", "Failed")  # noqa: E731
    ok = kubesim.wait_for_pod(api, "default", name + "-ok", done)
    bad = kubesim.wait_for_pod(api, "default", name + "-bad", done)
    assert ok.status.phase == "Succeeded"
    assert ok.status.container_statuses[0].state.terminated.reason == "Completed"
    assert bad.status.phase == "Failed"
    assert bad.status.container_statuses[0].state.terminated.exit_code == 4
    for n in (name + "-ok", name + "-bad"):
        api.delete_namespaced_pod(n, "default")


def test_pvc_data_survives_pods(ks, name):
    api = ks.client()
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    created = api.create_namespaced_persistent_volume_claim("default", pvc)
    assert created.status.phase == "Bound"
    assert ks.kubectl("get", "pvc", name, "-o", "jsonpath={.status.phase}").stdout == "Bound"

    def with_claim(pod_name, script):
        manifest = kubesim.pod(pod_name, ["sh", "-c", script], restartPolicy="Never",
                               volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": name}}])
        manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        api.create_namespaced_pod("default", manifest)
        return kubesim.wait_for_pod(api, "default", pod_name, lambda p: p.status.phase in ("Succeeded", "Failed"))

    assert with_claim(name + "-w", "echo kept > /data/file").status.phase == "Succeeded"
    api.delete_namespaced_pod(name + "-w", "default")
    assert with_claim(name + "-r", "cat /data/file").status.phase == "Succeeded"
    assert api.read_namespaced_pod_log(name + "-r", "default") == "kept\n"
    api.delete_namespaced_pod(name + "-r", "default")
    api.delete_namespaced_persistent_volume_claim(name, "default")


def test_namespaces(ks, name):
    api = ks.client()
    api.create_namespace({"metadata": {"name": name}})
    assert name in [n.metadata.name for n in api.list_namespace().items]
    api.create_namespaced_pod(name, kubesim.pod("inside", ["sleep", "300"]))
    # Deletion is two steps, as with the apiserver: the namespace is Terminating at once and
    # takes no new content; the namespace controller then empties and removes it.
    terminating = api.delete_namespace(name)  # this client hands the answer back as a dict
    assert terminating["status"]["phase"] == "Terminating"
    assert terminating["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as refused:
        api.create_namespaced_pod(name, kubesim.pod("late", ["sleep", "300"]))
    assert refused.value.status == 403
    assert __import__("json").loads(refused.value.body)["message"] == \
        f"unable to create new content in namespace {name} because it is being terminated"
    kubesim.wait_until(lambda: kubesim.namespace_gone(api, name), 30, f"namespace {name} to be removed")
    assert api.list_namespaced_pod(name).items == []


def test_graceful_delete_is_modified_then_deleted(ks, name):
    api = ks.client()
    api.create_namespaced_pod("default", kubesim.pod(name, ["sleep", "300"], terminationGracePeriodSeconds=1))
    pod = kubesim.wait_for_pod(api, "default", name, kubesim.running)
    rv = pod.metadata.resource_version
    deleted = api.delete_namespaced_pod(name, "default")
    assert deleted.metadata.deletion_timestamp is not None
    events = []
    for event in ks.watch_lines(f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"
                                f"&fieldSelector=metadata.name%3D{name}&timeoutSeconds=30"):
        events.append(event["type"])
        if event["type"] == "DELETED":
            break
    assert events[0] == "MODIFIED" and events[-1] == "DELETED"


def test_watch_bookmarks_and_initial_events(ks):
    status, listed = ks.request("GET", "/api/v1/namespaces")
    rv = listed["metadata"]["resourceVersion"]
    events = list(ks.watch_lines(f"/api/v1/namespaces?watch=true&resourceVersion={rv}"
                                 "&allowWatchBookmarks=true&timeoutSeconds=1"))
    assert events[-1]["type"] == "BOOKMARK"
    assert events[-1]["object"]["kind"] == "Namespace"
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)
    initial = list(ks.watch_lines("/api/v1/namespaces?watch=1&allowWatchBookmarks=true&timeoutSeconds=1"
                                  "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"))
    names = [e["object"]["metadata"].get("name") for e in initial if e["type"] == "ADDED"]
    assert "default" in names
    marker = next(e for e in initial if e["type"] == "BOOKMARK")
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_too_old_is_410(fresh_kube_sim):
    ks = fresh_kube_sim("--watch-history", "3")
    for i in range(5):
        status, _ = ks.request("POST", "/api/v1/namespaces", {"metadata": {"name": f"n{i}"}})
        assert status == 201
    events = list(ks.watch_lines("/api/v1/namespaces?watch=1&resourceVersion=2"))
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    assert events[0]["object"]["message"].startswith("too old resource version: 2")


def test_sigterm_removes_containers_and_volumes(fresh_kube_sim):
    ks = fresh_kube_sim()
    api = ks.client()
    api.create_namespaced_persistent_volume_claim("default", {
        "metadata": {"name": "keep"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    manifest = kubesim.pod("busy", ["sleep", "300"], volumes=[{"name": "scratch", "emptyDir": {}}])
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    api.create_namespaced_pod("default", manifest)
    kubesim.wait_for_pod(api, "default", "busy", kubesim.running)
    assert kubesim.docker_ids("container", ks.instance)
    assert len(kubesim.docker_ids("volume", ks.instance)) == 2
    # The fixture sends SIGTERM and asserts exit status 0 and nothing left behind.
