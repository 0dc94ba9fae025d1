#!/usr/bin/env python3
"""sshpod benchmarks: every scenario against every subject, in one run.

Started by bench/run.sh, which builds the release binaries and ensures Docker, the guest image
and the venv first. Standard library only.

Subjects (see BENCHMARKS.md): sshpod on Docker (`connection` mode), sshpod on Kubernetes
(kube-sim), OpenSSH sshd alone, OpenSSH sshd with a `docker run` ForceCommand, raw `docker run`
and raw `docker exec`. Every SSH subject is driven by the same OpenSSH client with the same key.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import pty
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("SSHPOD_GUEST_IMAGE", "sshpod-guest:latest")
LABEL = "sshpod-bench"
# the login shell every subject starts for the time to prompt: sshpod's default
# (`docker.execution.shellCommand`), so the shells' own start-up weighs alike
SHELL_LINE = "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l"
# the guest image's sftp-server, for the subjects that reach it without SSH
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
MiB = 1024 * 1024
GiB = 1024 * MiB
# The `ciphers` scenario: the client picks the cipher, and OpenSSH's picks chacha20-poly1305 unless
# told otherwise; these subjects are streamed again with this one chosen (`ssh -c`).
CIPHER = "aes128-gcm@openssh.com"
CIPHER_SUBJECTS = ("sshpod-docker", "openssh")
# logins counted on a Kubernetes server with `pod.lifeline: true`
KUBE_API_LOGINS = 10

# --------------------------------------------------------------------------------------------
# helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def pct(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def end_process(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not ended within `timeout` seconds."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def descendants(pid: int) -> list[int]:
    """All descendant processes of pid (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def docker_cleanup(run_id: str) -> None:
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL}={run_id}"],
                         capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def wait_no_containers(label_filter: str, keep: str = "", timeout: float = 60) -> int:
    """Wait until the containers of finished sessions are gone (all but `keep`); remove what is
    left after `timeout` and return how many that were."""
    deadline = time.monotonic() + timeout
    while True:
        rows = subprocess.run(["docker", "ps", "-a", "--no-trunc", "--filter", f"label={label_filter}", "--format",
                               '{{.ID}} {{.Label "sshpod.pool"}} {{.Label "kube-sim.pod"}}'],
                              capture_output=True, text=True).stdout.splitlines()
        # a pooled subject's waiting members (Docker: labelled; kube-sim: its pods' names) and
        # the kubectl subject's pod are not leftovers of the scenario
        left = [r.split()[0] for r in rows
                if r.split() and r.split()[0] != keep and " true" not in r
                and "/sshpod-pool-" not in r and "/bench-exec-" not in r]
        if not left:
            return 0
        if time.monotonic() >= deadline:
            log(f"  {len(left)} container(s) labelled {label_filter} still there {timeout:g} s after the "
                f"clients ended: removing them")
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
            return len(left)
        time.sleep(0.5)


# --------------------------------------------------------------------------------------------
# subjects


class Subject:
    name = ""
    title = ""
    ssh = True            # reached with the OpenSSH client
    sftp = True
    logins_only = False   # measured in the login scenarios only (login, prompt, concurrency)

    def start(self) -> None: ...
    def stop(self) -> None: ...

    # command line that runs `remote` (a shell command line) in the subject; ssh_opts are extra
    # OpenSSH client options, for SSH subjects only
    def argv(self, remote: str, stdin: bool = False, ssh_opts: tuple[str, ...] = ()) -> list[str]:
        raise NotImplementedError

    def server_pid(self) -> int | None:
        return None

    # command line that starts the subject's interactive login shell on a terminal, or None
    # when the subject cannot show a prompt reliably
    def shell_argv(self) -> list[str] | None:
        return None

    def await_ready(self) -> None:
        """Waits until the subject is as ready for a login as when it started (a pool refilled);
        untimed, before every timed login."""


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="sshpod-bench."))
        os.chmod(self.tmp, 0o700)
        self.run_id = f"{os.getpid()}-{int(time.time())}"
        self.key = self.tmp / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", str(self.key)],
                       check=True)
        self.pub = (self.tmp / "id_ed25519.pub").read_text()

    def ssh_options(self, port: int) -> list[str]:
        return ["-F", "/dev/null", "-o", "ControlMaster=no", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", "IdentityAgent=none", "-o", "PreferredAuthentications=publickey",
                "-o", "ConnectTimeout=60", "-i", str(self.key), "-p", str(port)]


class SshSubject(Subject):
    """A server process of ours, logging to `logf`."""
    user = "bench"
    port = 0
    proc: subprocess.Popen | None = None
    logf = None
    stop_timeout = 60

    def __init__(self, bench: Bench):
        self.bench = bench

    def stop(self) -> None:
        end_process(self.proc, self.stop_timeout)
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None

    def server_pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def argv(self, remote: str, stdin: bool = False, ssh_opts: tuple[str, ...] = ()) -> list[str]:
        return ["ssh", *self.bench.ssh_options(self.port), *ssh_opts, f"{self.user}@127.0.0.1", remote]

    def shell_argv(self) -> list[str] | None:
        return ["ssh", *self.bench.ssh_options(self.port), "-tt", f"{self.user}@127.0.0.1"]

    def sftp_argv(self, batch: str) -> list[str]:
        opts = [o if o != "-p" else "-P" for o in self.bench.ssh_options(self.port)]
        return ["sftp", *opts, "-b", batch, f"{self.user}@127.0.0.1"]

    def negotiated(self, ssh_opts: tuple[str, ...] = ()) -> dict:
        out = subprocess.run(["ssh", "-v", *self.bench.ssh_options(self.port), *ssh_opts, f"{self.user}@127.0.0.1",
                              "true"], capture_output=True, text=True, timeout=120).stderr
        info = {}
        if m := re.search(r"kex: algorithm: (\S+)", out):
            info["kex"] = m.group(1)
        if m := re.search(r"kex: server->client cipher: (\S+) MAC: (\S+)", out):
            info["cipher"] = m.group(1)
            info["mac"] = m.group(2)
        if m := re.search(r"Remote protocol version [^,]+, remote software version (\S+)", out):
            info["server"] = m.group(1)
        return info


class Sshpod(SshSubject):
    def __init__(self, bench: Bench, backend: str, kubeconfig: Path | None = None, lifeline: bool = False,
                 recorded: bool = False):
        super().__init__(bench)
        self.backend = backend
        self.kubeconfig = kubeconfig
        self.lifeline = lifeline
        self.recorded = recorded
        self.name = "sshpod-docker" if backend == "docker" else "sshpod-kube"
        if lifeline:
            self.name += "-lifeline"
        if recorded:
            self.name += "-recorded"
        self.title = ("sshpod, Docker backend (connection mode)" if backend == "docker"
                      else "sshpod, Kubernetes backend (kube-sim)")
        if recorded:
            self.title += ", every session recorded (format sshpod, stdout intercepted)"
        self.dir = bench.tmp / self.name
        (self.dir / "authorized_keys").mkdir(parents=True)
        (self.dir / "authorized_keys" / self.user).write_text(bench.pub)
        self.log_path = self.dir / "sshpod.log"
        self.audit_dir = self.dir / "audit"
        if recorded:
            self.audit_dir.mkdir()

    def prune(self) -> None:
        """Removes the recordings of connections that ended, so gigabytes streamed through a
        recorded subject do not pile up on the disk during a run."""
        if not self.recorded:
            return
        for state in (self.audit_dir / ".state").glob("*.json"):
            try:
                complete = json.loads(state.read_text()).get("complete")
            except (OSError, ValueError):
                continue
            if complete:
                shutil.rmtree(self.audit_dir / state.stem, ignore_errors=True)
                state.unlink(missing_ok=True)

    def config(self) -> dict:
        cfg = {
            "ssh": {"listen": f"127.0.0.1:{self.port}", "hostkeys": [str(self.dir / "host_ed25519_key")],
                    # 200 logins at once, all from 127.0.0.1: above the default 100 concurrent
                    # unauthenticated connections, and 20 from one address
                    "maxStartups": 256, "perSourceMaxStartups": "none"},
            "log": {"level": "info", "format": "text"},
            "auth": {"publicKey": {"method": "authorizedKeys",
                                   "authorizedKeys": {"file": str(self.dir / "authorized_keys" / "%u")}},
                     "password": {"method": ""}},
        }
        if self.backend == "docker":
            # sshpod's default timeouts and start cap: 200 logins at once must pass with them
            cfg["docker"] = {"execution": {"mode": "connection",
                                           "container": {"image": IMAGE,
                                                         "labels": {LABEL: self.bench.run_id}}}}
        else:
            cfg["backend"] = "kubernetes"
            # one client for the whole process: 200 logins at once need more than 5 requests/s
            cfg["kubernetes"] = {"connection": {"kubeconfig": str(self.kubeconfig), "qps": 1000, "burst": 1000},
                                 "pod": {"mode": "connection", "lifeline": self.lifeline},
                                 # kube-sim starts 200 pods through one dockerd: over the default 60 s
                                 "timeouts": {"podStart": "180s", "http": "120s"}}
        if self.recorded:
            cfg["audit"] = {"enable": True, "format": "sshpod", "storage": "file",
                            "file": {"directory": str(self.audit_dir)}, "intercept": {"stdout": True}}
        return cfg

    def start(self) -> None:
        self.port = free_port()
        path = self.dir / "config.json"
        path.write_text(json.dumps(self.config(), indent=2))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSHPOD_") and k != "RUST_LOG"}
        env["NO_COLOR"] = "1"
        # the per-connection count of Kubernetes API requests, and the instance lease's
        # renewals and sweeps, are logged at debug level
        if self.backend == "kubernetes":
            env["SSHPOD_LOG"] = "info,sshpod_kube=debug"
        self.logf = open(self.log_path, "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(self.bench.args.sshpod), "--config", str(path)], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        try:
            wait_port(self.port, 60)
        except RuntimeError:
            raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-3000:]}") from None

    def api_requests(self) -> list[int]:
        text = self.log_path.read_text(errors="replace")
        return [int(n) for n in re.findall(r"Kubernetes API requests for this connection api_requests=(\d+)", text)]

    def instance_requests(self) -> int:
        """Requests for the whole process, none of them per login: lease renewals and sweeps."""
        text = self.log_path.read_text(errors="replace")
        return sum(int(n) for n in re.findall(r"(?:instance API|swept for orphans) requests=(\d+)", text))



class PooledSshpod(Sshpod):
    """sshpod with a warm pool of `size` containers (pods), full before the subject is measured."""
    logins_only = True  # a claimed member streams like any container

    def __init__(self, bench: Bench, backend: str, size: int, kubeconfig: Path | None = None):
        SshSubject.__init__(self, bench)
        self.backend, self.kubeconfig, self.lifeline, self.recorded = backend, kubeconfig, False, False
        self.size = size
        self.name = f"sshpod-{'docker' if backend == 'docker' else 'kube'}-pool"
        self.title = (f"sshpod, {'Docker backend (connection mode)' if backend == 'docker' else 'Kubernetes backend (kube-sim)'}"
                      f", a warm pool of {size}")
        self.dir = bench.tmp / self.name
        (self.dir / "authorized_keys").mkdir(parents=True)
        (self.dir / "authorized_keys" / self.user).write_text(bench.pub)
        self.log_path = self.dir / "sshpod.log"
        self.audit_dir = self.dir / "audit"
        self.metrics_port = 0

    def config(self) -> dict:
        cfg = super().config()
        cfg["pool"] = {"size": self.size}
        cfg["metrics"] = {"enable": True, "listen": f"127.0.0.1:{self.metrics_port}"}
        return cfg

    def start(self) -> None:
        self.metrics_port = free_port()
        super().start()
        if not self.pool_full(300):
            raise RuntimeError(f"{self.name}: the pool did not fill in 300 s")

    def await_ready(self) -> None:
        # the login before took a member: measure the next one with the pool full again, as
        # a login finds it when logins come slower than refills
        if not self.pool_full(120):
            log(f"  {self.name}: the pool did not refill in 120 s")

    def pool_full(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
                    text = r.read().decode()
            except OSError:
                text = ""
            if re.search(rf"^sshpod_pool_ready {self.size}$", text, re.M):
                return True
            time.sleep(0.05)
        return False


def pooled_subjects(bench: Bench, kubeconfig: Path) -> list[Subject]:
    """The pooled subjects: a pool of 50, so 200 logins at once find 50 started."""
    return [PooledSshpod(bench, "docker", 50), PooledSshpod(bench, "kubernetes", 50, kubeconfig)]


# The user OpenSSH's subjects log in as: a clean account (no shell start-up files, the
# engine's group for the ForceCommand), so that the login's shell does not weigh in with
# whatever this machine's root has in its ~/.bashrc (which bash reads even for `ssh host cmd`).
OPENSSH_USER = "sshpod-bench"
OPENSSH_HOME = Path("/var/lib/sshpod-bench")


def ensure_openssh_user() -> None:
    if subprocess.run(["id", OPENSSH_USER], capture_output=True).returncode != 0:
        # `*`: no password, but not locked (sshd without PAM refuses a locked account)
        subprocess.run(["useradd", "--system", "--home-dir", str(OPENSSH_HOME), "--shell", "/bin/bash",
                        "--groups", "docker", "--password", "*", OPENSSH_USER], check=True)
    OPENSSH_HOME.mkdir(mode=0o755, exist_ok=True)
    shutil.chown(OPENSSH_HOME, OPENSSH_USER, OPENSSH_USER)


class OpenSsh(SshSubject):
    user = OPENSSH_USER

    def __init__(self, bench: Bench, force_command: bool):
        super().__init__(bench)
        self.force_command = force_command
        self.name = "openssh-docker-run" if force_command else "openssh"
        self.title = ("OpenSSH sshd, ForceCommand docker run --rm -i" if force_command
                      else "OpenSSH sshd alone (no container)")
        self.dir = bench.tmp / self.name
        self.dir.mkdir()
        os.chmod(self.dir, 0o700)
        # read by sshd as the user: in the user's home, not in the run's private directory
        self.authorized_keys = OPENSSH_HOME / f"authorized_keys.{self.name}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / "host_ed25519_key")],
                       check=True)

    def start(self) -> None:
        ensure_openssh_user()
        self.authorized_keys.write_text(self.bench.pub)
        os.chmod(self.authorized_keys, 0o644)
        self.port = free_port()
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.dir / 'host_ed25519_key'}",
            f"PidFile {self.dir / 'sshd.pid'}",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            # 200 logins at once: above the default 10:30:100
            "MaxStartups 256",
            "LogLevel ERROR",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
        ]
        if self.force_command:
            # a command runs as `sh -c`; no command (`ssh -tt host`) gets the login shell on a
            # terminal, like sshpod's
            run = f"docker run --rm --label {LABEL}={self.bench.run_id}"
            lines.append(f'ForceCommand if [ -n "$SSH_ORIGINAL_COMMAND" ]; then '
                         f'exec {run} -i {IMAGE} sh -c "$SSH_ORIGINAL_COMMAND"; '
                         f"else exec {run} -it {IMAGE} sh -c '{SHELL_LINE}'; fi")
        (self.dir / "sshd_config").write_text("\n".join(lines) + "\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.logf = open(self.dir / "sshd.log", "ab")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                     stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        wait_port(self.port, 30)

    stop_timeout = 30

    def stop(self) -> None:
        # every session the listener forked (they are in other process groups), then the listener
        for pid in descendants(self.proc.pid) if self.proc and self.proc.poll() is None else []:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        super().stop()


class DockerRun(Subject):
    name = "docker-run"
    title = "docker run --rm (engine floor)"
    ssh = False
    sftp = False

    def __init__(self, bench: Bench):
        self.bench = bench

    def argv(self, remote: str, stdin: bool = False, ssh_opts: tuple[str, ...] = ()) -> list[str]:
        assert not ssh_opts, "no SSH client here"
        return ["docker", "run", "--rm", *(["-i"] if stdin else []), "--label", f"{LABEL}={self.bench.run_id}",
                IMAGE, "sh", "-c", remote]

    def shell_argv(self) -> list[str] | None:
        return ["docker", "run", "--rm", "-it", "--label", f"{LABEL}={self.bench.run_id}", IMAGE,
                "sh", "-c", SHELL_LINE]


class DockerExec(Subject):
    name = "docker-exec"
    title = "docker exec into a running container (sftp: `sftp -D` of the image's sftp-server through it)"
    ssh = False

    def __init__(self, bench: Bench):
        self.bench = bench
        self.cid = ""

    def start(self) -> None:
        self.cid = subprocess.run(["docker", "run", "-d", "--rm", "--label", f"{LABEL}={self.bench.run_id}",
                                   IMAGE, "sleep", "infinity"], capture_output=True, text=True,
                                  check=True).stdout.strip()

    def stop(self) -> None:
        if self.cid:
            subprocess.run(["docker", "rm", "-f", self.cid], capture_output=True)
            self.cid = ""

    def argv(self, remote: str, stdin: bool = False, ssh_opts: tuple[str, ...] = ()) -> list[str]:
        assert not ssh_opts, "no SSH client here"
        return ["docker", "exec", *(["-i"] if stdin else []), self.cid, "sh", "-c", remote]

    def shell_argv(self) -> list[str] | None:
        return ["docker", "exec", "-it", self.cid, "sh", "-c", SHELL_LINE]

    def sftp_argv(self, batch: str) -> list[str]:
        # the image's sftp-server on the exec's stdin/stdout: sftp without SSH, the engine's floor
        return ["sftp", "-D", f"docker exec -i {self.cid} {SFTP_SERVER}", "-b", batch]


class Kubectl(Subject):
    """`kubectl` through the same kube-sim as sshpod-kube: the floor the Kubernetes API itself
    sets. `exec` goes into one running pod (started once); `run` starts a pod per command."""
    ssh = False
    sftp = False

    def __init__(self, bench: Bench, kube: "KubeSim", mode: str):
        self.bench = bench
        self.kube = kube
        self.mode = mode
        self.name = f"kubectl-{mode}"
        self.title = ("kubectl exec into a running pod (kube-sim; sftp: `sftp -D` of the image's sftp-server "
                      "through it)" if mode == "exec" else "kubectl run --rm of a new pod (kube-sim)")
        self.sftp = mode == "exec"
        self.pod = f"bench-exec-{os.getpid()}"

    def kubectl(self) -> list[str]:
        return ["kubectl", "--kubeconfig", str(self.kube.kubeconfig)]

    def start(self) -> None:
        if shutil.which("kubectl") is None:
            raise RuntimeError("kubectl is not installed: the kubectl subjects need it")
        if self.mode != "exec":
            return
        subprocess.run([*self.kubectl(), "run", self.pod, f"--image={IMAGE}", "--image-pull-policy=IfNotPresent",
                        "--restart=Never", "--", "sleep", "infinity"], capture_output=True, check=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            phase = subprocess.run([*self.kubectl(), "get", "pod", self.pod, "-o", "jsonpath={.status.phase}"],
                                   capture_output=True, text=True).stdout
            if phase == "Running":
                return
            time.sleep(0.2)
        raise RuntimeError(f"pod {self.pod} did not start")

    def stop(self) -> None:
        if self.mode == "exec":
            subprocess.run([*self.kubectl(), "delete", "pod", self.pod, "--wait=false"], capture_output=True)

    def argv(self, remote: str, stdin: bool = False, ssh_opts: tuple[str, ...] = ()) -> list[str]:
        assert not ssh_opts, "no SSH client here"
        if self.mode == "exec":
            return [*self.kubectl(), "exec", *(["-i"] if stdin else []), self.pod, "--", "sh", "-c", remote]
        # a fresh pod name per command: the shell names it when the command starts
        line = " ".join(shlex.quote(a) for a in [*self.kubectl(), "run", "--rm", "-i", "--quiet",
                                                   f"--image={IMAGE}", "--image-pull-policy=IfNotPresent",
                                                   "--restart=Never"])
        return ["sh", "-c", f'exec {line} "bench-run-$(date +%s%N)" -- sh -c {shlex.quote(remote)}']

    def sftp_argv(self, batch: str) -> list[str]:
        line = " ".join(shlex.quote(a) for a in [*self.kubectl(), "exec", "-i", self.pod, "--", SFTP_SERVER])
        return ["sftp", "-D", line, "-b", batch]

    def shell_argv(self) -> list[str] | None:
        if self.mode != "exec":
            # `kubectl run -it` attaches after the pod started: the first prompt can be gone
            # by then (kubectl says "If you don't see a command prompt, try pressing enter")
            return None
        return [*self.kubectl(), "exec", "-it", self.pod, "--", "sh", "-c", SHELL_LINE]


class KubeSim:
    def __init__(self, bench: Bench):
        self.bench = bench
        self.dir = bench.tmp / "kube-sim"
        self.dir.mkdir()
        self.kubeconfig = self.dir / "kubeconfig"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.logf = open(self.dir / "kube-sim.log", "ab")
        self.proc = subprocess.Popen([str(self.bench.args.kube_sim), "--listen", "127.0.0.1:0",
                                      "--kubeconfig", str(self.kubeconfig)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.logf)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("kube-sim ready: "):
            raise RuntimeError(f"kube-sim did not start: {line!r} {(self.dir / 'kube-sim.log').read_text()[-2000:]}")
        self.instance = dict(f.split("=", 1) for f in line.split()[3:])["instance"]
        threading.Thread(target=lambda: self.proc.stdout.read(), daemon=True).start()

    def stop(self) -> None:
        end_process(self.proc, 120)
        self.proc = None


# --------------------------------------------------------------------------------------------
# scenarios


def run_timed(argv: list[str], timeout: float = 600, stdin=subprocess.DEVNULL) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return time.perf_counter() - t0, p.returncode, p.stdout + p.stderr


def all_ready(subjects: list[Subject]) -> None:
    """Every pool full again before the next timed login, whoever's it is: a refill running
    meanwhile would weigh on another subject's login."""
    for s in subjects:
        s.await_ready()


def login_latency(subjects: list[Subject], runs: int) -> dict[str, dict]:
    """`true` on every subject, round-robin: one login each per round, so that the engine
    and the machine drifting during the scenario (a clean-up finishing, caches warming)
    weigh on every subject alike."""
    argvs = {s.name: s.argv("true") for s in subjects}
    for s in subjects:
        s.await_ready()
        run_timed(argvs[s.name])  # warm-up (caches, first connection)
    times: dict[str, list[float]] = {name: [] for name in argvs}
    failures = dict.fromkeys(argvs, 0)
    for _ in range(runs):
        for s in subjects:
            name, argv = s.name, argvs[s.name]
            all_ready(subjects)
            t, rc, out = run_timed(argv)
            if rc != 0:
                failures[name] += 1
                log(f"  {name}: login failed ({rc}): {out[-300:]!r}")
            else:
                times[name].append(t * 1000)
    return {name: {"runs": runs, "failures": failures[name], "median_ms": median(ts), "p99_ms": pct(ts, 99),
                   "min_ms": min(ts) if ts else None, "samples_ms": [round(t, 2) for t in ts]}
            for name, ts in times.items()}


def first_output(argv: list[str], timeout: float = 120) -> tuple[float | None, bytes]:
    """Starts `argv` on a terminal of its own and returns the seconds to its first byte of
    output (None if none came in time) and what it wrote; then types `exit` and waits for it
    to end."""
    master, slave = pty.openpty()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen: float | None = None
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None and seen is None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process on the terminal has gone
                break
            if not chunk:
                break
            if seen is None:
                seen = time.perf_counter() - t0
                os.write(master, b"exit\n")
            out += chunk
    finally:
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(master)
    return seen, bytes(out)


def time_to_prompt(subjects: list[Subject], runs: int) -> dict[str, dict]:
    """From starting the client to the first byte the login shell writes on its terminal
    (`ssh -tt host`; `docker run -it`, `docker exec -it`, `kubectl exec -it` of the same login
    shell), round-robin like the login latency."""
    subjects = [s for s in subjects if s.shell_argv() is not None]
    for s in subjects:
        s.await_ready()
        first_output(s.shell_argv())  # warm-up
    times: dict[str, list[float]] = {s.name: [] for s in subjects}
    failures = dict.fromkeys(times, 0)
    for _ in range(runs):
        for s in subjects:
            all_ready(subjects)
            seen, out = first_output(s.shell_argv())
            if seen is None:
                failures[s.name] += 1
                log(f"  {s.name}: no prompt: {out[-300:]!r}")
            else:
                times[s.name].append(seen * 1000)
    return {name: {"runs": runs, "failures": failures[name], "median_ms": median(ts), "p99_ms": pct(ts, 99),
                   "samples_ms": [round(t, 2) for t in ts]}
            for name, ts in times.items()}


def stream_down(subj: Subject, size: int, ssh_opts: tuple[str, ...] = ()) -> dict:
    """`head -c SIZE /dev/zero` in the container, read by us from the client's stdout."""
    argv = subj.argv(f"head -c {size} /dev/zero", ssh_opts=ssh_opts)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         bufsize=0)
    fd = p.stdout.fileno()
    got, first = 0, None
    while True:
        n = os.readv(fd, [view])
        if n == 0:
            break
        if first is None:
            first = time.perf_counter()
        got += n
    end = time.perf_counter()
    rc = p.wait()
    return {"bytes": got, "ok": rc == 0 and got == size, "wall_s": end - t0,
            "data_s": end - (first or end), "rc": rc}


def stream_up(subj: Subject, size: int, ssh_opts: tuple[str, ...] = ()) -> dict:
    """`cat > /dev/null` in the container, fed by us through the client's stdin once it runs."""
    argv = subj.argv("echo go; exec cat >/dev/null", stdin=True, ssh_opts=ssh_opts)
    chunk = bytes(1 << 20)
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         bufsize=0)
    ready = p.stdout.readline()
    first = time.perf_counter()
    sent = 0
    try:
        while sent < size:
            n = min(len(chunk), size - sent)
            p.stdin.write(chunk[:n] if n < len(chunk) else chunk)
            sent += n
    except BrokenPipeError:
        pass
    p.stdin.close()
    p.stdout.read()
    rc = p.wait()
    end = time.perf_counter()
    return {"bytes": sent, "ok": rc == 0 and sent == size and ready.strip() == b"go", "wall_s": end - t0,
            "data_s": end - first, "rc": rc}


def throughput(subj: Subject, direction: str, size: int, runs: int, ssh_opts: tuple[str, ...] = ()) -> dict:
    fn = stream_down if direction == "down" else stream_up
    results = []
    for _ in range(runs):
        results.append(fn(subj, size, ssh_opts))
        if isinstance(subj, Sshpod):
            subj.prune()
    ok = [r for r in results if r["ok"]]
    if len(ok) < len(results):
        log(f"  {subj.name} {direction}: {len(results) - len(ok)} failed run(s): {results}")
    walls = [r["wall_s"] for r in ok]
    datas = [r["data_s"] for r in ok]
    return {"size": size, "runs": runs, "failures": len(results) - len(ok),
            "wall_s": median(walls), "data_s": median(datas),
            "mb_s": size / 1e6 / median(datas) if datas else None,
            "wall_mb_s": size / 1e6 / median(walls) if walls else None,
            "samples": results}


def sftp_both_ways(subj: Subject, local: Path, size: int, runs: int) -> dict:
    """One `sftp -b` session per run: put, then get back; local `!date` commands time each step
    (the login is not included)."""
    back = local.with_suffix(".back")
    batch = local.with_suffix(".batch")
    remote = f"/tmp/sshpod-bench-{os.getpid()}.bin"
    batch.write_text(f"!date +%s.%N\nput {local} {remote}\n!date +%s.%N\nget {remote} {back}\n"
                     f"!date +%s.%N\nrm {remote}\n")
    puts, gets, fails = [], [], 0
    for _ in range(runs):
        back.unlink(missing_ok=True)
        t, rc, out = run_timed(subj.sftp_argv(str(batch)))
        stamps = [float(x) for x in re.findall(rb"^(\d{9,}\.\d+)$", out, re.M)]
        if rc != 0 or len(stamps) != 3 or not back.exists() or back.stat().st_size != size:
            fails += 1
            log(f"  {subj.name} sftp failed ({rc}): {out[-500:]!r}")
            continue
        puts.append(stamps[1] - stamps[0])
        gets.append(stamps[2] - stamps[1])
    back.unlink(missing_ok=True)
    return {"size": size, "runs": runs, "failures": fails,
            "put_s": median(puts), "get_s": median(gets),
            "put_mb_s": size / 1e6 / median(puts) if puts else None,
            "get_mb_s": size / 1e6 / median(gets) if gets else None,
            "put_samples_s": puts, "get_samples_s": gets}


def concurrency(subj: Subject, n: int) -> dict:
    argv = subj.argv("echo ok")
    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        t0 = time.perf_counter()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
            ok = p.returncode == 0 and p.stdout.strip() == b"ok"
            err = "" if ok else (p.stderr.decode(errors="replace").strip()[-200:] or f"rc={p.returncode}")
        except subprocess.TimeoutExpired:
            ok, err = False, "timeout"
        return time.perf_counter() - t0, ok, err, t0

    with ThreadPoolExecutor(max_workers=n) as ex:
        results = list(ex.map(one, range(n)))
    start = min(r[3] for r in results)
    total = max(r[3] + r[0] for r in results) - start
    good = [r[0] * 1000 for r in results if r[1]]
    errors: dict[str, int] = {}
    for r in results:
        if not r[1]:
            errors[r[2]] = errors.get(r[2], 0) + 1
    return {"logins": n, "failures": n - len(good), "p50_ms": median(good), "p99_ms": pct(good, 99),
            "total_s": total, "errors": errors}


def memory(subj: SshSubject, n: int, parallel: int) -> dict:
    """Server memory with 0 and with n idle logged-in sessions (`exec sleep`)."""
    pid = subj.server_pid()
    time.sleep(1)
    before = measure_memory(subj, pid)
    clients: list[subprocess.Popen] = []
    lock = threading.Lock()

    def open_one(_):
        p = subprocess.Popen(subj.argv("echo ready; exec sleep 100000"), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        with lock:
            clients.append(p)
        return p.stdout.readline().strip() == b"ready"

    opened = 0
    leftovers: list[int] = []
    try:
        with ThreadPoolExecutor(max_workers=parallel) as ex:
            opened = sum(ex.map(open_one, range(n)))
        time.sleep(2)
        during = measure_memory(subj, pid)
        # what the sessions run on the host (OpenSSH alone: `sleep`), which outlives the
        # clients: sshd signals nothing to a session without a terminal
        leftovers = [d for d in descendants(pid) if comm(d) != "sshd"] if isinstance(subj, OpenSsh) else []
    finally:
        for p in clients:
            p.terminate()
        for p in clients:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    time.sleep(1)
    for d in leftovers:
        if comm(d) in ("sleep", "bash", "sh"):
            try:
                os.kill(d, signal.SIGKILL)
            except ProcessLookupError:
                pass
    out = {"sessions_requested": n, "sessions_open": opened, "idle": before, "loaded": during}
    if opened:
        for key in before:
            out[f"per_session_{key}"] = (during[key] - before[key]) / opened
    return out


def measure_memory(subj: SshSubject, pid: int) -> dict:
    if isinstance(subj, Sshpod):
        return {"rss_kib": proc_status_kib(pid, "VmRSS"), "pss_kib": pss_kib(pid)}
    # OpenSSH: the listener is not per session; sum its descendants. sshd processes are the
    # server; the rest (bash, sleep, docker CLI) are what the session runs.
    sshd, others = 0, 0
    for d in descendants(pid):
        kib = pss_kib(d)
        if comm(d) == "sshd":
            sshd += kib
        else:
            others += kib
    return {"sshd_pss_kib": sshd, "all_pss_kib": sshd + others}


# --------------------------------------------------------------------------------------------
# machine, report


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    docker_v = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              text=True).stdout.strip()
    ssh_v = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem_kib / 1024 / 1024, 1),
            "kernel": platform.release(), "os": _os_release(), "docker": docker_v, "openssh": ssh_v,
            "python": platform.python_version()}


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "?"


def fmt(x, digits=0, unit=""):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def report(res: dict) -> tuple[str, dict]:
    """The tables (markdown) and the targets' verdicts."""
    S = res["subjects"]
    L = res["scenarios"].get("login", {})
    T = res["scenarios"].get("throughput", {})
    X = res["scenarios"].get("ciphers", {})  # absent from results older than the scenario
    F = res["scenarios"].get("sftp", {})
    C = res["scenarios"].get("concurrency", {})
    M = res["scenarios"].get("memory", {})
    K = res["scenarios"].get("kube_api", {})
    KL = res["scenarios"].get("kube_api_lifeline", {})
    out = []

    out.append(f"### Login latency (`ssh host true`; `docker run --rm IMAGE true`; `docker exec C true`), "
               f"{res['params']['login_runs']} runs each, round-robin across subjects\n")
    out.append("| subject | median | p99 | failures | vs docker run | vs OpenSSH+ForceCommand |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for s in S:
        r = L.get(s)
        if not r:
            continue
        out.append(f"| {s} | {fmt(r['median_ms'], 1, ' ms')} | {fmt(r['p99_ms'], 1, ' ms')} | {r['failures']} | "
                   f"{ratio(r['median_ms'], L.get('docker-run', {}).get('median_ms'))} | "
                   f"{ratio(r['median_ms'], L.get('openssh-docker-run', {}).get('median_ms'))} |")

    P = res["scenarios"].get("prompt", {})
    if P:
        out.append(f"\n### Time to prompt (`ssh -tt host`; `docker run -it`, `docker exec -it`, `kubectl exec -it` "
                   f"of the same login shell): client start to the shell's first byte on the terminal, "
                   f"{res['params']['login_runs']} runs each, round-robin\n")
        out.append("| subject | median | p99 | failures | vs OpenSSH | vs OpenSSH+ForceCommand |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for s in S:
            r = P.get(s)
            if not r:
                continue
            out.append(f"| {s} | {fmt(r['median_ms'], 1, ' ms')} | {fmt(r['p99_ms'], 1, ' ms')} | {r['failures']} | "
                       f"{ratio(r['median_ms'], P.get('openssh', {}).get('median_ms'))} | "
                       f"{ratio(r['median_ms'], P.get('openssh-docker-run', {}).get('median_ms'))} |")

    size = res["params"]["stream_bytes"]
    out.append(f"\n### Throughput, {size // MiB} MiB through the client's stdout/stdin, "
               f"median of {res['params']['stream_runs']}\n")
    out.append("MB/s is measured from the first byte to the end (login excluded); wall is the whole command.\n")
    out.append("| subject | down MB/s | down wall | up MB/s | up wall | down vs docker exec | down vs ForceCommand "
               "| up vs docker exec | up vs ForceCommand |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in S:
        d, u = T.get(s, {}).get("down"), T.get(s, {}).get("up")
        if not d:
            continue
        rd = lambda k, x: T.get(k, {}).get(x, {}).get("mb_s")  # noqa: E731
        out.append(f"| {s} | {fmt(d['mb_s'])} | {fmt(d['wall_s'], 2, ' s')} | {fmt(u['mb_s'])} | "
                   f"{fmt(u['wall_s'], 2, ' s')} | {ratio(d['mb_s'], rd('docker-exec', 'down'))} | "
                   f"{ratio(d['mb_s'], rd('openssh-docker-run', 'down'))} | "
                   f"{ratio(u['mb_s'], rd('docker-exec', 'up'))} | {ratio(u['mb_s'], rd('openssh-docker-run', 'up'))} |")

    if X:
        cipher = res["params"].get("cipher", CIPHER)
        out.append(f"\n### Throughput with the client choosing {cipher} (`ssh -c {cipher}`), {size // MiB} MiB, "
                   f"median of {res['params']['stream_runs']}\n")
        out.append("Same streams as above; the cipher column is what `ssh -v` reported with that option, "
                   "not what was asked for.\n")
        out.append("| subject | cipher | down MB/s | up MB/s | down vs docker exec | up vs docker exec |")
        out.append("|---|---|---:|---:|---:|---:|")
        for s in S:
            r = X.get(s)
            if not r:
                continue
            d, u = r["down"]["mb_s"], r["up"]["mb_s"]
            e = T.get("docker-exec", {})
            out.append(f"| {s} | {r['negotiated'].get('cipher', 'n/a')} | {fmt(d)} | {fmt(u)} | "
                       f"{ratio(d, e.get('down', {}).get('mb_s'))} | {ratio(u, e.get('up', {}).get('mb_s'))} |")

    if F:
        fsize = res["params"]["sftp_bytes"]
        out.append(f"\n### sftp, {fsize // MiB} MiB put then get in one `sftp -b` session, "
                   f"median of {res['params']['sftp_runs']}\n")
        out.append("The exec floor: the same sftp-server reached with `sftp -D` through `docker exec -i` "
                   "(Docker) or `kubectl exec -i` (Kubernetes), no SSH.\n")
        out.append("| subject | put MB/s | get MB/s | failures | put vs ForceCommand | get vs ForceCommand "
                   "| put vs exec floor | get vs exec floor |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for s in S:
            r = F.get(s)
            if not r:
                continue
            ref = F.get("openssh-docker-run", {})
            floor = F.get("kubectl-exec" if s.startswith("sshpod-kube") else "docker-exec", {}) \
                if s.startswith("sshpod-") else {}
            out.append(f"| {s} | {fmt(r['put_mb_s'])} | {fmt(r['get_mb_s'])} | {r['failures']} | "
                       f"{ratio(r['put_mb_s'], ref.get('put_mb_s'))} | {ratio(r['get_mb_s'], ref.get('get_mb_s'))} | "
                       f"{ratio(r['put_mb_s'], floor.get('put_mb_s'))} | {ratio(r['get_mb_s'], floor.get('get_mb_s'))} |")

    KX = T.get("kubectl-exec", {})
    if KX or L.get("kubectl-exec") or L.get("kubectl-run"):
        out.append("\n### Kubernetes: sshpod-kube against `kubectl` through the same kube-sim\n")
        out.append("Login: `ssh host true` against `kubectl exec POD -- true` into a running pod and "
                   "`kubectl run --rm -i` of a new pod running `true`. Throughput: the rows above.\n")
        out.append("| figure | sshpod-kube | kubectl exec | kubectl run --rm | sshpod-kube vs kubectl exec |")
        out.append("|---|---:|---:|---:|---:|")
        lk, lx, lr = (L.get(n, {}).get("median_ms") for n in ("sshpod-kube", "kubectl-exec", "kubectl-run"))
        out.append(f"| login median | {fmt(lk, 1, ' ms')} | {fmt(lx, 1, ' ms')} | {fmt(lr, 1, ' ms')} | "
                   f"{ratio(lk, lx)} |")
        for direction in ("down", "up"):
            k = T.get("sshpod-kube", {}).get(direction, {}).get("mb_s")
            x = KX.get(direction, {}).get("mb_s")
            out.append(f"| {direction} MB/s | {fmt(k)} | {fmt(x)} | | {ratio(k, x)} |")
            kw = T.get("sshpod-kube", {}).get(direction, {}).get("wall_mb_s")
            xw = KX.get(direction, {}).get("wall_mb_s")
            out.append(f"| {direction} MB/s, wall (login included) | {fmt(kw)} | {fmt(xw)} | | {ratio(kw, xw)} |")

    if C:
        out.append(f"\n### Concurrency: {res['params']['concurrency']} logins at once, each `echo ok`\n")
        out.append("| subject | failures | p50 | p99 | total |")
        out.append("|---|---:|---:|---:|---:|")
        for s in S:
            r = C.get(s)
            if not r:
                continue
            out.append(f"| {s} | {r['failures']} | {fmt(r['p50_ms'], 0, ' ms')} | {fmt(r['p99_ms'], 0, ' ms')} | "
                       f"{fmt(r['total_s'], 1, ' s')} |")
        errs = {s: r["errors"] for s, r in C.items() if r.get("errors")}
        if errs:
            out.append("\nErrors seen: " + "; ".join(f"{s}: " + ", ".join(f"{k!r} x{v}" for k, v in e.items())
                                                    for s, e in errs.items()))

    if M:
        out.append(f"\n### Memory with idle sessions (`ssh host 'exec sleep ...'` held open)\n")
        out.append("| subject | sessions | server at 0 | server at N | per session | measured | containers left 20-60 s "
                   "after the clients ended |")
        out.append("|---|---:|---:|---:|---:|---|---:|")
        for s in S:
            r = M.get(s)
            if not r:
                continue
            if s.startswith("sshpod"):
                out.append(f"| {s} | {r['sessions_open']}/{r['sessions_requested']} | "
                           f"{fmt(r['idle']['rss_kib'] / 1024, 1, ' MiB')} | {fmt(r['loaded']['rss_kib'] / 1024, 1, ' MiB')} | "
                           f"{fmt(r.get('per_session_rss_kib'), 1, ' KiB')} | sshpod RSS (VmRSS); Pss per session "
                           f"{fmt(r.get('per_session_pss_kib'), 1, ' KiB')} | {r.get('containers_left_after_logout', 'n/a')} |")
            else:
                out.append(f"| {s} | {r['sessions_open']}/{r['sessions_requested']} | "
                           f"{fmt(r['idle']['sshd_pss_kib'] / 1024, 1, ' MiB')} | "
                           f"{fmt(r['loaded']['sshd_pss_kib'] / 1024, 1, ' MiB')} | "
                           f"{fmt(r.get('per_session_sshd_pss_kib'), 1, ' KiB')} | Pss of the per-session sshd "
                           f"processes; with what they run (shell, docker CLI): "
                           f"{fmt(r.get('per_session_all_pss_kib'), 1, ' KiB')} | {r.get('containers_left_after_logout', 'n/a')} |")

    if K:
        out.append(f"\n### Kubernetes API requests per login (sshpod-kube against kube-sim)\n")
        out.append(f"Over {K['connections']} connections: median {fmt(K['median'])}, max {fmt(K['max'])}, "
                   f"min {fmt(K['min'])} (default: the instance Lease, no lifeline).")
        if "instance_per_minute" in K:
            out.append(f"\nFor the whole process, not per login (instance Lease renewals and sweeps of other "
                       f"instances' orphans): {K['instance_requests']} requests in {fmt(K['instance_minutes'], 1)} "
                       f"minutes, {fmt(K['instance_per_minute'], 1)} a minute.")
        if KL:
            out.append(f"\nWith `kubernetes.pod.lifeline: true`, over {KL['connections']} connections "
                       f"({KL['failures']} failed logins): median {fmt(KL['median'])}, max {fmt(KL['max'])}, "
                       f"min {fmt(KL['min'])}.")

    # targets
    t = {}

    def verdict(ok):
        return None if ok is None else bool(ok)

    sd, dr, fc, de = (L.get("sshpod-docker", {}).get("median_ms"), L.get("docker-run", {}).get("median_ms"),
                      L.get("openssh-docker-run", {}).get("median_ms"), L.get("docker-exec", {}).get("median_ms"))
    t["login: sshpod-docker median <= docker run + 50 ms"] = (
        verdict(sd is not None and dr is not None and sd <= dr + 50) if sd and dr else None,
        f"{fmt(sd, 1)} ms vs {fmt(dr, 1)} + 50 ms")
    t["login: sshpod-docker median <= 0.6x OpenSSH+ForceCommand"] = (
        verdict(sd <= 0.6 * fc) if sd and fc else None, f"{ratio(sd, fc)}")
    for direction in ("down", "up"):
        s = T.get("sshpod-docker", {}).get(direction, {}).get("mb_s")
        e = T.get("docker-exec", {}).get(direction, {}).get("mb_s")
        f = T.get("openssh-docker-run", {}).get(direction, {}).get("mb_s")
        t[f"throughput {direction}: sshpod-docker >= 1.0x docker exec"] = (
            verdict(s >= e) if s and e else None, ratio(s, e))
        t[f"throughput {direction}: sshpod-docker >= 2x OpenSSH+ForceCommand"] = (
            verdict(s >= 2 * f) if s and f else None, ratio(s, f))
    s_d = T.get("sshpod-docker", {}).get("down", {}).get("mb_s")
    s_u = T.get("sshpod-docker", {}).get("up", {}).get("mb_s")
    o_d = T.get("openssh", {}).get("down", {}).get("mb_s")
    o_u = T.get("openssh", {}).get("up", {}).get("mb_s")
    if s_d and s_u and o_d and o_u:
        # flow control bounds only client->container data: its rate relative to the other
        # direction must not be worse than OpenSSH's own
        t["throughput: no slowdown from flow control (sshpod up/down >= OpenSSH up/down)"] = (
            (s_u / s_d) >= 0.95 * (o_u / o_d), f"sshpod {s_u / s_d:.2f}, OpenSSH {o_u / o_d:.2f}")
    for direction in ("down", "up"):
        s = T.get("sshpod-docker", {}).get(direction, {}).get("mb_s")
        r = T.get("sshpod-docker-recorded", {}).get(direction, {}).get("mb_s")
        t[f"recording: throughput {direction} with stdout recorded >= 0.9x without"] = (
            verdict(r >= 0.9 * s) if s and r else None, ratio(r, s))
    m = M.get("sshpod-docker", {}).get("per_session_rss_kib")
    mr = M.get("sshpod-docker-recorded", {}).get("per_session_rss_kib")
    t["recording: at most 16 KiB more per idle session"] = (
        verdict(mr - m <= 16) if m is not None and mr is not None else None,
        f"{fmt(mr, 1)} vs {fmt(m, 1)} KiB (RSS)" if m is not None and mr is not None else "n/a")
    t["memory: sshpod <= 100 KiB per idle session"] = (verdict(m <= 100) if m is not None else None,
                                                       f"{fmt(m, 1)} KiB (RSS)")
    for s in ("sshpod-docker", "sshpod-kube"):
        if s in C:
            t[f"concurrency: zero failed logins at {res['params']['concurrency']} in parallel ({s})"] = (
                C[s]["failures"] == 0, f"{C[s]['failures']} failed")
    for direction in ("down", "up"):
        k = T.get("sshpod-kube", {}).get(direction, {}).get("mb_s")
        x = T.get("kubectl-exec", {}).get(direction, {}).get("mb_s")
        t[f"Kubernetes throughput {direction}: sshpod-kube >= 1.0x kubectl exec"] = (
            verdict(k >= x) if k and x else None, ratio(k, x))
    for way in ("put", "get"):
        k = F.get("sshpod-kube", {}).get(f"{way}_mb_s")
        d = F.get("sshpod-docker", {}).get(f"{way}_mb_s")
        t[f"Kubernetes sftp {way}: sshpod-kube >= 0.8x sshpod-docker"] = (
            verdict(k >= 0.8 * d) if k and d else None, ratio(k, d))
    # the warm pool (issue 19)
    o = L.get("openssh", {}).get("median_ms")
    dp, kp = L.get("sshpod-docker-pool", {}).get("median_ms"), L.get("sshpod-kube-pool", {}).get("median_ms")
    t["pool: sshpod-docker-pool login <= 0.25x OpenSSH+ForceCommand"] = (
        verdict(dp <= 0.25 * fc) if dp and fc else None, ratio(dp, fc))
    t["pool: sshpod-docker-pool login <= OpenSSH alone"] = (verdict(dp <= o) if dp and o else None, ratio(dp, o))
    t["pool: sshpod-kube-pool login <= 0.5x OpenSSH+ForceCommand"] = (
        verdict(kp <= 0.5 * fc) if kp and fc else None, ratio(kp, fc))
    cp, cd = C.get("sshpod-docker-pool"), C.get("docker-run")
    if cp and cd:
        t[f"pool: {res['params']['concurrency']} logins at once, pool of 50: no failures, total <= docker run's"] = (
            cp["failures"] == 0 and cp["total_s"] <= cd["total_s"],
            f"{cp['failures']} failed, {fmt(cp['total_s'], 1)} s vs {fmt(cd['total_s'], 1)} s, "
            f"p99 {fmt(cp['p99_ms'] / 1000 if cp['p99_ms'] else None, 1)} s")
    mk = M.get("sshpod-kube", {}).get("per_session_rss_kib")
    t["Kubernetes memory: sshpod-kube <= 64 KiB per idle session"] = (
        verdict(mk <= 64) if mk is not None else None, f"{fmt(mk, 1)} KiB (RSS)")
    if K:
        t["Kubernetes: at most 4 API requests per login"] = (
            K["max"] <= 4, f"max {K['max']}, median {K['median']}")
    return "\n".join(out), t


def targets_md(t: dict) -> str:
    lines = ["| target | result | figure |", "|---|---|---|"]
    for name, (ok, fig) in t.items():
        word = "n/a" if ok is None else ("**met**" if ok else "**missed**")
        lines.append(f"| {name} | {word} | {fig} |")
    return "\n".join(lines)


def write_benchmarks_md(res: dict, tables: str, t: dict) -> None:
    m = res["machine"]
    notes = REPO / "bench" / "notes.md"
    neg = "\n".join(f"- {s}: {json.dumps(v)}" for s, v in res.get("negotiated", {}).items())
    cipher_note = " (except in the table that passes `-c`)" if res["scenarios"].get("ciphers") else ""
    text = f"""# Benchmarks

sshpod against OpenSSH and raw Docker, side by side in one run. Generated by `bench/run.sh`
(do not edit by hand: the analysis comes from `bench/notes.md`); raw figures in
`bench/results.json`.

- **Date:** {res['date']}
- **Machine:** {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']} ({m['os']});
  Docker {m['docker']}; {m['openssh']}. Clients and servers share the same cores.
- **Reproduce:** `{res['command']}` (about {res['runtime_s'] / 60:.0f} minutes{', quick mode' if res['params']['quick'] else ''})
- **Subjects:**
{chr(10).join(f'  - `{s}`: {title}' for s, title in res['subject_titles'].items())}
- **Client:** the same OpenSSH client for every SSH subject (`ssh -F /dev/null -o ControlMaster=no`, one
  Ed25519 key), default algorithm negotiation{cipher_note}. Negotiated:
{chr(10).join('  ' + line for line in neg.splitlines())}
- **Settings changed from the defaults (and why):** sshpod `ssh.maxStartups: 256` and sshd
  `MaxStartups 256` (200 logins at once; the defaults, 100 and 10:30:100, drop connections by
  design); sshpod-docker runs with every other default (timeouts, `maxParallelStarts: 8`);
  sshpod-kube `kubernetes.connection.qps: 1000`, `burst: 1000` (the default 5/10 requests
  per second for the whole process would queue 200 logins for minutes),
  `kubernetes.timeouts.podStart: 180s` and `http: 120s` (19 of 200 pods took longer than the
  default 60 s in a first run), and
  `SSHPOD_LOG=info,sshpod_kube=debug` (for the per-connection API request count).

## Targets (issue 6)

{targets_md(t)}

## Figures

{tables}

{notes.read_text() if notes.exists() else ''}"""
    (REPO / "BENCHMARKS.md").write_text(text.rstrip() + "\n")


# --------------------------------------------------------------------------------------------
# main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few iterations, small sizes (for iterating)")
    ap.add_argument("--sshpod", type=Path)
    ap.add_argument("--kube-sim", type=Path)
    ap.add_argument("--only", default="",
                    help="comma-separated scenarios: login,prompt,throughput,ciphers,sftp,concurrency,memory")
    ap.add_argument("--subjects", default="", help="comma-separated subject names (default: all)")
    ap.add_argument("--command", default="bench/run.sh", help="how this run was started (for BENCHMARKS.md)")
    ap.add_argument("--memory-sessions", type=int, default=0,
                    help="idle sessions held by the memory scenario (default: 200, 10 with --quick)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave results.json and BENCHMARKS.md")
    ap.add_argument("--from-results", action="store_true",
                    help="run nothing: print the tables of bench/results.json and rewrite BENCHMARKS.md from it "
                         "(after editing bench/notes.md)")
    args = ap.parse_args()
    if args.from_results:
        res = json.loads((REPO / "bench" / "results.json").read_text())
        tables, t = report(res)
        print(tables)
        print(targets_md(t))
        write_benchmarks_md(res, tables, t)
        return 0

    q = args.quick
    params = {
        "quick": q,
        "login_runs": 5 if q else 30,
        "stream_bytes": 64 * MiB if q else GiB,
        "stream_runs": 1 if q else 3,
        "cipher": CIPHER,  # the `ciphers` scenario streams stream_bytes, stream_runs times, with it
        "sftp_bytes": 32 * MiB if q else 256 * MiB,
        "sftp_runs": 1 if q else 3,
        "concurrency": 20 if q else 200,
        "memory_sessions": args.memory_sessions or (10 if q else 200),
    }
    scenarios = (set(filter(None, args.only.split(",")))
                 or {"login", "prompt", "throughput", "ciphers", "sftp", "concurrency", "memory"})

    # SIGTERM/SIGHUP end the run the way Ctrl-C does: through the finally below
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    bench = Bench(args)
    started = time.monotonic()
    kube = KubeSim(bench)
    subjects: list[Subject] = [Sshpod(bench, "docker"), Sshpod(bench, "docker", recorded=True), None,
                               OpenSsh(bench, False), OpenSsh(bench, True), DockerRun(bench), DockerExec(bench)]
    subjects[2] = Sshpod(bench, "kubernetes", kube.kubeconfig)
    subjects += [Kubectl(bench, kube, "exec"), Kubectl(bench, kube, "run")]
    subjects += pooled_subjects(bench, kube.kubeconfig)
    if args.subjects:
        wanted = set(args.subjects.split(","))
        subjects = [s for s in subjects if s.name in wanted]
    res: dict = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "command": args.command, "params": params, "machine": machine(),
                 "subjects": [s.name for s in subjects],
                 "subject_titles": {s.name: s.title for s in subjects},
                 "negotiated": {}, "scenarios": {}}
    exec_cid = lambda: next((s.cid for s in subjects if isinstance(s, DockerExec)), "")  # noqa: E731

    def settle(s: Subject) -> int:
        """Let the containers of the scenario that just ended go before the next one starts;
        returns how many were still there after a while (and were removed)."""
        if isinstance(s, Sshpod) and s.backend == "kubernetes":
            return wait_no_containers(f"kube-sim.instance={kube.instance}", timeout=60)
        if isinstance(s, Kubectl):
            return 0
        return wait_no_containers(f"{LABEL}={bench.run_id}", keep=exec_cid(),
                                  timeout=60 if isinstance(s, Sshpod) else 20)

    try:
        if any((isinstance(s, Sshpod) and s.backend == "kubernetes") or isinstance(s, Kubectl) for s in subjects):
            log("starting kube-sim")
            kube.start()
        for s in subjects:
            log(f"starting {s.name}")
            s.start()
        for s in subjects:
            if isinstance(s, SshSubject):
                res["negotiated"][s.name] = s.negotiated()
        log(f"negotiated: {res['negotiated']}")

        if "memory" in scenarios:
            # first, on fresh servers: nothing allocated by earlier scenarios yet
            res["scenarios"]["memory"] = {}
            for s in subjects:
                if not isinstance(s, SshSubject) or s.logins_only:
                    continue
                log(f"memory: {s.name}, {params['memory_sessions']} idle sessions")
                res["scenarios"]["memory"][s.name] = memory(s, params["memory_sessions"], parallel=10)
                log(f"  {res['scenarios']['memory'][s.name]}")
                res["scenarios"]["memory"][s.name]["containers_left_after_logout"] = settle(s)
            # restart the sshpod servers so kube API counts and later figures start clean
            for s in subjects:
                if isinstance(s, Sshpod):
                    s.stop()
                    s.log_path.write_text("")
                    s.start()
            # the docker-exec container is not touched by this

        if "login" in scenarios:
            log(f"login latency: {', '.join(s.name for s in subjects)}, round-robin")
            res["scenarios"]["login"] = login_latency(subjects, params["login_runs"])
            for name, r in res["scenarios"]["login"].items():
                log(f"  {name}: median {fmt(r['median_ms'], 1)} ms, p99 {fmt(r['p99_ms'], 1)} ms, "
                    f"failures {r['failures']}")
            for s in subjects:
                if isinstance(s, Sshpod) and s.backend == "kubernetes" and not s.logins_only:
                    time.sleep(2)
                    counts = s.api_requests()
                    if counts:
                        minutes = (time.monotonic() - s.started) / 60
                        instance = s.instance_requests()
                        res["scenarios"]["kube_api"] = {"connections": len(counts), "median": median(counts),
                                                        "max": max(counts), "min": min(counts), "samples": counts,
                                                        "instance_requests": instance, "instance_minutes": minutes,
                                                        "instance_per_minute": instance / minutes}
                        log(f"kube API requests per login: {res['scenarios']['kube_api']}")
                    # the same logins with `pod.lifeline: true`, on a server of its own
                    alt = Sshpod(bench, "kubernetes", kube.kubeconfig, lifeline=True)
                    alt.start()
                    try:
                        failures = sum(run_timed(alt.argv("true"))[1] != 0 for _ in range(KUBE_API_LOGINS))
                        time.sleep(2)
                        counts = alt.api_requests()
                    finally:
                        alt.stop()
                    if counts:
                        res["scenarios"]["kube_api_lifeline"] = {
                            "connections": len(counts), "failures": failures, "median": median(counts),
                            "max": max(counts), "min": min(counts), "samples": counts}
                        log(f"  with pod.lifeline true: {res['scenarios']['kube_api_lifeline']}")

        if "prompt" in scenarios:
            log("time to prompt, round-robin")
            res["scenarios"]["prompt"] = time_to_prompt(subjects, params["login_runs"])
            for name, r in res["scenarios"]["prompt"].items():
                log(f"  {name}: median {fmt(r['median_ms'], 1)} ms, p99 {fmt(r['p99_ms'], 1)} ms, "
                    f"failures {r['failures']}")

        if "throughput" in scenarios:
            res["scenarios"]["throughput"] = {}
            for s in subjects:
                if (isinstance(s, Kubectl) and s.mode == "run") or s.logins_only:
                    continue  # a login comparison only
                r = {}
                for direction in ("down", "up"):
                    log(f"throughput {direction}: {s.name}")
                    r[direction] = throughput(s, direction, params["stream_bytes"], params["stream_runs"])
                    log(f"  {fmt(r[direction]['mb_s'])} MB/s (wall {fmt(r[direction]['wall_s'], 2)} s)")
                res["scenarios"]["throughput"][s.name] = r

        if "ciphers" in scenarios:
            # the same streams with the client choosing the cipher; the negotiation is read back
            # with `ssh -v` so the table shows what was used, not what was asked for
            res["scenarios"]["ciphers"] = {}
            opts = ("-c", CIPHER)
            for s in subjects:
                if s.name not in CIPHER_SUBJECTS:
                    continue
                r = {"ssh_opts": list(opts), "negotiated": s.negotiated(opts)}
                got = r["negotiated"].get("cipher")
                log(f"ciphers: {s.name} with {' '.join(opts)}: negotiated {got}"
                    + ("" if got == CIPHER else f" (NOT {CIPHER})"))
                for direction in ("down", "up"):
                    log(f"throughput {direction}: {s.name} {' '.join(opts)}")
                    r[direction] = throughput(s, direction, params["stream_bytes"], params["stream_runs"], opts)
                    log(f"  {fmt(r[direction]['mb_s'])} MB/s (wall {fmt(r[direction]['wall_s'], 2)} s)")
                res["scenarios"]["ciphers"][s.name] = r

        if "sftp" in scenarios:
            res["scenarios"]["sftp"] = {}
            local = bench.tmp / "sftp.bin"
            with open(local, "wb") as f:
                left = params["sftp_bytes"]
                while left:
                    n = min(left, 4 * MiB)
                    f.write(os.urandom(n))
                    left -= n
            for s in subjects:
                if not s.sftp or s.logins_only:
                    continue
                log(f"sftp: {s.name}")
                r = sftp_both_ways(s, local, params["sftp_bytes"], params["sftp_runs"])
                res["scenarios"]["sftp"][s.name] = r
                log(f"  put {fmt(r['put_mb_s'])} MB/s, get {fmt(r['get_mb_s'])} MB/s")

        if "concurrency" in scenarios:
            res["scenarios"]["concurrency"] = {}
            for s in subjects:
                if isinstance(s, Kubectl):
                    continue  # the Kubernetes comparison is login and throughput
                log(f"concurrency: {s.name}, {params['concurrency']} logins")
                r = concurrency(s, params["concurrency"])
                res["scenarios"]["concurrency"][s.name] = r
                log(f"  failures {r['failures']}, p50 {fmt(r['p50_ms'])} ms, p99 {fmt(r['p99_ms'])} ms, "
                    f"total {fmt(r['total_s'], 1)} s {r['errors'] or ''}")
                if isinstance(s, PooledSshpod):
                    s.await_ready()  # its refill must not weigh on the next subject
                else:
                    r["containers_left_after_logout"] = settle(s)
    finally:
        log("cleaning up")
        for s in subjects:
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001
                log(f"stopping {s.name}: {e}")
        try:
            kube.stop()
        except Exception as e:  # noqa: BLE001
            log(f"stopping kube-sim: {e}")
        docker_cleanup(bench.run_id)
        if os.environ.get("SSHPOD_BENCH_KEEP"):
            log(f"kept {bench.tmp}")
        else:
            shutil.rmtree(bench.tmp, ignore_errors=True)

    res["runtime_s"] = time.monotonic() - started
    tables, t = report(res)
    print()
    print(tables)
    print("\n### Targets\n")
    print(targets_md(t))
    print(f"\nruntime: {res['runtime_s'] / 60:.1f} min")
    if not args.no_write:
        res["targets"] = {k: {"met": v[0], "figure": v[1]} for k, v in t.items()}
        (REPO / "bench" / "results.json").write_text(json.dumps(res, indent=1) + "\n")
        write_benchmarks_md(res, tables, t)
        log("wrote bench/results.json and BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
