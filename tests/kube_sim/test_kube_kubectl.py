"""kubectl 1.32 against kube-sim: run, create -f, get -o wide, wait, exec, logs, delete."""

from __future__ import annotations

import textwrap

import kubesim


def test_run_wait_get_exec_logs_delete(ks, name):
    ks.kubectl("run", name, f"--image={kubesim.GUEST_IMAGE}", "--restart=Never", "--",
               "sh", "-c", "echo started; exec sleep 300")
    ks.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")

    wide = ks.kubectl("get", "pods", "-o", "wide").stdout
    header, *rows = wide.splitlines()
    assert header.split()[:6] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"]
    row = next(r.split() for r in rows if r.startswith(name + " "))
    assert row[1:3] == ["1/1", "Running"]
    assert row[5].count(".") == 3, row  # the pod IP

    result = ks.kubectl("exec", "-i", name, "--", "sh", "-c", "cat; exit 3", input="through stdin\n", check=False)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "through stdin\n"
    assert "command terminated with exit code 3" in result.stderr

    assert ks.kubectl("logs", name).stdout == "started\n"

    ks.kubectl("delete", "pod", name, "--grace-period=1")  # waits until the pod is gone
    gone = ks.kubectl("get", "pod", name, check=False)
    assert gone.returncode == 1
    assert f'pods "{name}" not found' in gone.stderr


def test_create_f_multi_container_pod_shares_localhost(ks, name, tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata:
          name: {name}
          labels: {{app: {name}}}
        spec:
          terminationGracePeriodSeconds: 1
          hostname: web-host
          containers:
          - name: server
            image: {kubesim.GUEST_IMAGE}
            command: ["busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/etc"]
          - name: client
            image: {kubesim.GUEST_IMAGE}
            command: ["sleep", "300"]
            env: [{{name: GREETING, value: hello}}]
            workingDir: /tmp
        """))
    assert ks.kubectl("create", "-f", str(manifest)).stdout.strip() == f"pod/{name} created"
    ks.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
    assert ks.kubectl("get", "pods", "-l", f"app={name}", "-o", "name").stdout.split() == [f"pod/{name}"]
    fetched = ks.kubectl("exec", name, "-c", "client", "--",
                         "busybox", "wget", "-qO-", "http://127.0.0.1:8080/hostname").stdout
    assert fetched.strip() == "web-host"
    env = ks.kubectl("exec", name, "-c", "client", "--", "sh", "-c", 'echo "$GREETING $(pwd)"').stdout
    assert env == "hello /tmp\n"
    ks.kubectl("delete", "-f", str(manifest), "--grace-period=1")


def test_client_certificate_user(ks):
    assert "NAME" in ks.kubectl("--context", "kube-sim-cert", "get", "namespaces").stdout
