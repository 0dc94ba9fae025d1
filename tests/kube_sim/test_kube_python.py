"""The official Python client against kube-sim: create, watch, exec (v5), port-forward, attach,
delete; and a raw v4 exec."""

from __future__ import annotations

import json
import ssl

import websocket
from kubernetes.stream import portforward, stream

import kubesim


def test_create_watch_exec_portforward_delete(ks, name):
    api = ks.client()
    created = api.create_namespaced_pod("default", kubesim.pod(
        name, ["busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/etc"]))
    assert created.metadata.uid and created.spec.node_name
    pod = kubesim.wait_for_pod(api, "default", name, kubesim.running)
    assert pod.status.container_statuses[0].ready

    resp = stream(api.connect_get_namespaced_pod_exec, name, "default",
                  command=["sh", "-c", "cat; echo err >&2; exit 3"],
                  stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    resp.write_stdin("over v5\n")
    resp.close_channel(0)  # stdin EOF, v5's half-close
    resp.run_forever(timeout=30)
    assert resp.read_stdout() == "over v5\n"
    assert resp.read_stderr() == "err\n"
    assert resp.returncode == 3

    pf = portforward(api.connect_get_namespaced_pod_portforward, name, "default", ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.") and reply.rstrip().endswith(name.encode())
    assert pf.error(8080) is None

    api.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    assert name not in [p.metadata.name for p in api.list_namespaced_pod("default").items]


def test_portforward_to_a_closed_port_reports_an_error(ks, name):
    api = ks.client()
    api.create_namespaced_pod("default", kubesim.pod(name, ["sleep", "300"]))
    kubesim.wait_for_pod(api, "default", name, kubesim.running)
    pf = portforward(api.connect_get_namespaced_pod_portforward, name, "default", ports="9")
    sock = pf.socket(9)
    sock.setblocking(True)
    assert sock.recv(1) == b""
    assert "error forwarding port 9" in (pf.error(9) or "")
    api.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_attach_to_main_process(ks, name):
    api = ks.client()
    manifest = kubesim.pod(name, ["cat"])
    manifest["spec"]["containers"][0]["stdin"] = True
    api.create_namespaced_pod("default", manifest)
    kubesim.wait_for_pod(api, "default", name, kubesim.running)
    resp = stream(api.connect_get_namespaced_pod_attach, name, "default",
                  stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    resp.write_stdin("echoed by cat\n")
    out = ""
    while "echoed by cat" not in out and resp.is_open():
        resp.update(timeout=10)
        out += resp.read_stdout(timeout=0) if resp.peek_stdout() else ""
    assert "echoed by cat\n" in out
    resp.close()
    api.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_exec_v4_frames(ks, name):
    api = ks.client()
    api.create_namespaced_pod("default", kubesim.pod(name, ["sleep", "300"]))
    kubesim.wait_for_pod(api, "default", name, kubesim.running)
    url = ks.url.replace("https://", "wss://") + (
        f"/api/v1/namespaces/default/pods/{name}/exec?command=sh&command=-c&command=echo+out%3B+exit+7"
        "&stdout=true&stderr=true")
    ws = websocket.create_connection(url, subprotocols=["v4.channel.k8s.io"],
                                     header=[f"Authorization: Bearer {ks.admin_token}"],
                                     sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(ks.ca_file)})
    assert ws.subprotocol == "v4.channel.k8s.io"
    frames = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert data[:2] == b"\x03\xe8"  # close code 1000
            break
        frames.append(data)
    ws.close()
    assert frames[0] == b"\x01"  # the empty "connection established" frame
    assert frames[1] == b"\x01out\n"
    status = json.loads(frames[2][1:])
    assert frames[2][0] == 3
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"][0] == {"reason": "ExitCode", "message": "7"}
    api.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_tty_exec_passes_low_bytes_untouched(ks, name):
    api = ks.client()
    api.create_namespaced_pod("default", kubesim.pod(name, ["sleep", "300"]))
    kubesim.wait_for_pod(api, "default", name, kubesim.running)
    # TTY output starting with 0x00-0x02 must not be mistaken for the engine's stream headers.
    resp = stream(api.connect_get_namespaced_pod_exec, name, "default",
                  command=["sh", "-c", r"printf '\001\002abc'; exit 5"],
                  stdin=False, stdout=True, stderr=False, tty=True, _preload_content=False)
    resp.run_forever(timeout=30)
    assert resp.read_stdout() == "\x01\x02abc"
    assert resp.returncode == 5
    api.delete_namespaced_pod(name, "default", grace_period_seconds=0)
