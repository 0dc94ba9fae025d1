"""Starting and stopping kube-sim for the tests, and small clients for raw API calls."""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import ssl
import subprocess
import tempfile
import time
import http.client
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
GUEST_IMAGE = os.environ.get("SSHPOD_GUEST_IMAGE", "sshpod-guest:latest")
INSTANCE_LABEL = "kube-sim.instance"


def kube_sim_bin() -> Path:
    if os.environ.get("KUBE_SIM_BIN"):
        return Path(os.environ["KUBE_SIM_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    return target / "debug" / "kube-sim"


def state_dir(instance: str) -> Path:
    """Where kube-sim writes its pods' configMap, secret and token volumes."""
    return Path(tempfile.gettempdir()) / f"kube-sim-{instance}"


def docker_ids(kind: str, instance: str) -> list[str]:
    """Containers (`ps -a`) or volumes still carrying the instance label."""
    args = ["docker", "ps", "-aq"] if kind == "container" else ["docker", "volume", "ls", "-q"]
    out = subprocess.run(args + ["--filter", f"label={INSTANCE_LABEL}={instance}"],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


class KubeSim:
    """A running kube-sim: its kubeconfig, URL, tokens and helpers."""

    def __init__(self, tmp: Path, *extra: str, listen: str = "127.0.0.1:0"):
        self.tmp = tmp
        self.kubeconfig = tmp / "kubeconfig"
        # Appended to: a kube-sim restarted in the same directory (--credentials) adds its lines.
        self.log = open(tmp / "kube-sim.log", "ab")
        self.proc = subprocess.Popen(
            [str(kube_sim_bin()), "--listen", listen, "--kubeconfig", str(self.kubeconfig), *extra],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        line = self._ready_line(deadline=time.monotonic() + 60)
        fields = dict(f.split("=", 1) for f in line.split()[3:])
        self.url = line.split()[2]
        self.instance = fields["instance"]
        config = yaml.safe_load(self.kubeconfig.read_text())
        users = {u["name"]: u["user"] for u in config["users"]}
        self.admin_token = users["admin"]["token"]
        self.restricted_token = users["restricted"]["token"]
        self.restricted_namespace = next(c["context"]["namespace"] for c in config["contexts"]
                                         if c["name"] == "kube-sim-restricted")
        self.ca_file = tmp / "ca.crt"
        self.ca_file.write_bytes(base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
        self.env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), KUBECACHEDIR=str(tmp / "kube-cache"))

    def _ready_line(self, deadline: float) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buffered = b""
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buffered += chunk
            if b"\n" in buffered:
                line = buffered.split(b"\n", 1)[0].decode()
                if line.startswith("kube-sim ready: "):
                    return line
        self.proc.kill()
        raise AssertionError(f"kube-sim did not become ready: {(self.tmp / 'kube-sim.log').read_text()}")

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.log.close()

    def logs(self) -> str:
        return (self.tmp / "kube-sim.log").read_text(errors="replace")

    # --- clients ---

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 90) -> subprocess.CompletedProcess:
        result = subprocess.run(["kubectl", *args], env=self.env, input=input, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def api_client(self, context: str = "kube-sim"):
        from kubernetes import config
        return config.new_client_from_config(str(self.kubeconfig), context=context)

    def client(self, context: str = "kube-sim"):
        from kubernetes import client
        return client.CoreV1Api(self.api_client(context))

    def leases(self, context: str = "kube-sim"):
        """The Python client's `coordination.k8s.io/v1` API."""
        from kubernetes import client
        return client.CoordinationV1Api(self.api_client(context))

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _connection(self) -> http.client.HTTPSConnection:
        host, port = self.url.removeprefix("https://").rsplit(":", 1)
        return http.client.HTTPSConnection(host, int(port), context=self.ssl_context(), timeout=60)

    def request(self, method: str, path: str, body: Any = None, token: str | None = "admin") -> tuple[int, Any]:
        """One request; returns (status, decoded JSON body)."""
        conn = self._connection()
        headers = {"Content-Type": "application/json"}
        if token == "admin":
            token = self.admin_token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, json.loads(data) if data else None

    def watch_lines(self, path: str) -> Iterator[dict]:
        """Events of a watch request, until the server ends the stream."""
        conn = self._connection()
        conn.request("GET", path, headers={"Authorization": f"Bearer {self.admin_token}"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        while True:
            line = response.readline()
            if not line:
                break
            yield json.loads(line)
        conn.close()


def start(tmp_dir: str | None = None, *extra: str) -> KubeSim:
    tmp = Path(tmp_dir or tempfile.mkdtemp(prefix="kube-sim-"))
    return KubeSim(tmp, *extra)


def pod(name: str, command: list[str], image: str = GUEST_IMAGE, **spec: Any) -> dict:
    """A one-container pod manifest."""
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": image, "command": command}]}}
    body["spec"].update(spec)
    return body


def wait_for_pod(api, namespace: str, name: str, predicate, timeout: int = 60):
    """Watches the pod until `predicate(pod)` holds; returns that pod."""
    from kubernetes import watch
    current = api.read_namespaced_pod(name, namespace)
    if predicate(current):
        return current
    w = watch.Watch()
    for event in w.stream(api.list_namespaced_pod, namespace, field_selector=f"metadata.name={name}",
                          resource_version=current.metadata.resource_version, timeout_seconds=timeout):
        if predicate(event["object"]):
            w.stop()
            return event["object"]
    raise AssertionError(f"pod {namespace}/{name} never reached the expected state")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns something truthy (returned); AssertionError naming
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def namespace_gone(api, name: str) -> bool:
    """True once reading the namespace answers 404."""
    from kubernetes.client.exceptions import ApiException
    try:
        api.read_namespace(name)
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def running(p) -> bool:
    return p.status is not None and p.status.phase == "Running"
