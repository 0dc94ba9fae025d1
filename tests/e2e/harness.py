"""Test harness for the sshpod end-to-end suite.

The suite drives the real `sshpod` binary with the real OpenSSH clients against a real Docker
engine. This module holds what the tests share and that is not a pytest fixture:

- `Gateway`: one sshpod process; reads "listening on ADDR" from its stdout, keeps draining
  stdout and stderr into a log kept for assertions and printed when a test fails;
- `Client`: OpenSSH command lines (ssh, scp, sftp, sshpass) for one user against one gateway;
- `TcpProxy`: a loopback TCP proxy that can be frozen to simulate a dead network;
- Docker queries (containers of a test run) and `wait_until`, the only way tests wait.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
GUEST_IMAGE = "sshpod-guest:latest"
TEST_LABEL = "sshpod-test"
LISTENING_RE = re.compile(r"listening on (\S+:\d+)")
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# Deadlines (seconds). Generous: a debug build on two cores, Docker starting containers.
STARTUP_TIMEOUT = 60
CONTAINER_TIMEOUT = 60
CLEANUP_TIMEOUT = 20
COMMAND_TIMEOUT = 90


class WaitTimeout(AssertionError):
    """A condition was not met before its deadline."""


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns a truthy value and return that value.

    Raises WaitTimeout naming `what` (and the last exception raised by the predicate, if any)
    when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_error = None
        except Exception as exc:  # noqa: BLE001 - reported in the timeout message
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)


def sshpod_bin() -> Path:
    path = Path(os.environ.get("SSHPOD_BIN") or REPO_ROOT / "target" / "debug" / "sshpod")
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for sshpod: ours minus SSHPOD_* and RUST_LOG, no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHPOD_") and k != "RUST_LOG"}
    env["NO_COLOR"] = "1"
    env.setdefault("RUST_BACKTRACE", "1")
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# Configuration


# ContainerSSH's security policy turns port forwarding off unless a configuration turns it on;
# the tests that forward say so.
FORWARDING = {"security": {"forwarding": {"forwardingMode": "enable"}}}


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small block-style YAML writer for plain dicts, lists and scalars.

    Scalars are written as JSON (double-quoted strings), which YAML reads the same way.
    """
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = to_yaml(item, indent + 2).lstrip()
                lines.append(f"{pad}- {inner}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(value))
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(value)


# --------------------------------------------------------------------------------------------
# The gateway process


class Gateway:
    """One running sshpod process."""

    def __init__(self, name: str, config_path: Path, args: Sequence[str] | None = None,
                 wrapper: Sequence[str] | None = None):
        self.name = name
        self.config_path = config_path
        cmd = [*(wrapper or []), str(sshpod_bin()), *(args if args is not None else ["--config", str(config_path)])]
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._open_streams = 2
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
            cwd=config_path.parent,
        )
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, ""), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, "stderr| "), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.addr: str | None = None
        self.port: int | None = None

    def _drain(self, stream, prefix: str) -> None:
        for raw in iter(stream.readline, b""):
            line = ANSI_RE.sub("", raw.decode("utf-8", "replace").rstrip("\r\n"))
            with self._cond:
                self._lines.append(prefix + line)
                self._cond.notify_all()
        stream.close()
        with self._cond:
            self._open_streams -= 1
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float, what: str | None = None) -> re.Match:
        """Wait for a log line matching `pattern` (searched in all lines so far and to come)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self._lines)
                if self._open_streams == 0:
                    raise AssertionError(
                        f"gateway {self.name} exited (status {self.proc.poll()}) before logging "
                        f"{what or regex.pattern!r}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(f"gateway {self.name} did not log {what or regex.pattern!r} within {timeout:g} s")
                self._cond.wait(remaining)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> "Gateway":
        match = self.wait_for_log(LISTENING_RE, timeout, "listening on ADDR")
        self.addr = match.group(1)
        self.port = int(self.addr.rsplit(":", 1)[1])
        return self

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"gateway {self.name} did not exit within {timeout:g} s") from None

    def wait_drained(self, timeout: float = 10) -> None:
        """After exit: wait until stdout and stderr are read to the end."""
        for thread in self._threads:
            thread.join(timeout)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.wait_drained()
        return self.proc.returncode


def run_sshpod(args: Sequence[str], timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run sshpod to completion (e.g. check-config)."""
    return subprocess.run(
        [str(sshpod_bin()), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=cwd,
    )


# --------------------------------------------------------------------------------------------
# OpenSSH clients


COMMON_SSH_OPTIONS = [
    "-F", "/dev/null",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=30",
]


class Result:
    def __init__(self, args: list[str], returncode: int, stdout: bytes, stderr: bytes):
        self.args = args
        self.returncode = returncode
        self.stdout_bytes = stdout
        self.stderr_bytes = stderr

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return (
            f"Result(rc={self.returncode}, args={' '.join(self.args)!r},\n"
            f"  stdout={self.stdout[-2000:]!r},\n  stderr={self.stderr[-2000:]!r})"
        )


class Client:
    """OpenSSH command lines for one user against one gateway."""

    def __init__(self, port: int, key: Path | None, user: str = "alice", host: str = "127.0.0.1",
                 password: str | None = None):
        self.port = port
        self.key = key
        self.user = user
        self.host = host
        self.password = password

    def with_(self, **changes: Any) -> "Client":
        values = dict(port=self.port, key=self.key, user=self.user, host=self.host, password=self.password)
        values.update(changes)
        return Client(**values)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}"

    def options(self) -> list[str]:
        opts = list(COMMON_SSH_OPTIONS)
        if self.password is None:
            opts += ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                     "-o", "PreferredAuthentications=publickey"]
            if self.key is not None:
                opts += ["-i", str(self.key)]
        else:
            opts += ["-o", "BatchMode=no", "-o", "PubkeyAuthentication=no",
                     "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1",
                     "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
        return opts

    def _wrap(self, args: list[str]) -> list[str]:
        return ["sshpass", "-e", *args] if self.password is not None else args

    def _env(self, env: dict[str, str] | None) -> dict[str, str]:
        out = dict(os.environ)
        out.pop("SSH_AUTH_SOCK", None)
        if self.password is not None:
            out["SSHPASS"] = self.password
        if env:
            out.update(env)
        return out

    def ssh_args(self, *remote: str, opts: Iterable[str] = ()) -> list[str]:
        return self._wrap(["ssh", *self.options(), "-p", str(self.port), *opts, self.destination, *remote])

    def scp_args(self, *paths: str, opts: Iterable[str] = ()) -> list[str]:
        return self._wrap(["scp", *self.options(), "-P", str(self.port), *opts, *paths])

    def sftp_args(self, *, opts: Iterable[str] = ()) -> list[str]:
        return self._wrap(["sftp", *self.options(), "-P", str(self.port), *opts, self.destination])

    def remote(self, path: str) -> str:
        return f"{self.destination}:{path}"

    def run_args(self, args: list[str], *, input: bytes | str | None = None, stdin_path: Path | None = None,
                 stdout_path: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = COMMAND_TIMEOUT) -> Result:
        """Run a client to completion. Output goes to temporary files, not pipes, so a
        background ControlMaster holding a copy of them cannot keep us waiting."""
        if isinstance(input, str):
            input = input.encode()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            stdin_file = open(stdin_path, "rb") if stdin_path else None
            stdout_file = open(stdout_path, "wb") if stdout_path else None
            try:
                proc = subprocess.Popen(
                    args,
                    stdin=stdin_file or (subprocess.PIPE if input is not None else subprocess.DEVNULL),
                    stdout=stdout_file or out,
                    stderr=err,
                    env=self._env(env),
                )
                try:
                    if input is not None:
                        proc.communicate(input, timeout=timeout)
                    else:
                        proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    out.seek(0)
                    err.seek(0)
                    raise WaitTimeout(
                        f"{' '.join(args)!r} did not finish within {timeout:g} s; "
                        f"stdout={out.read()[-2000:]!r} stderr={err.read()[-2000:]!r}"
                    ) from None
            finally:
                for f in (stdin_file, stdout_file):
                    if f:
                        f.close()
            out.seek(0)
            err.seek(0)
            return Result(args, proc.returncode, out.read(), err.read())

    def ssh(self, *remote: str, opts: Iterable[str] = (), **kw: Any) -> Result:
        return self.run_args(self.ssh_args(*remote, opts=opts), **kw)

    def popen(self, *remote: str, opts: Iterable[str] = (), **kw: Any) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(self.ssh_args(*remote, opts=opts), env=self._env(kw.pop("env", None)), **kw)


def control_options(path: Path, master: str = "auto", persist: str = "300") -> list[str]:
    return ["-o", f"ControlMaster={master}", "-o", f"ControlPath={path}", "-o", f"ControlPersist={persist}"]


def close_control_master(client: Client, path: Path) -> None:
    if path.exists():
        subprocess.run(
            ["ssh", *COMMON_SSH_OPTIONS, "-o", f"ControlPath={path}", "-O", "exit", "-p", str(client.port),
             client.destination],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
        )


# --------------------------------------------------------------------------------------------
# Docker


def docker(*args: str, timeout: float = 120, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
        )
    return proc


def containers(run_id: str, running_only: bool = False) -> list[str]:
    args = ["ps", "-q", "--no-trunc", "--filter", f"label={TEST_LABEL}={run_id}"]
    if not running_only:
        args.insert(1, "-a")
    return docker(*args).stdout.decode().split()


def container_labels(container_id: str) -> dict[str, str]:
    out = docker("inspect", "--format", "{{json .Config.Labels}}", container_id).stdout
    return json.loads(out) or {}


def wait_containers(run_id: str, count: int = 1, timeout: float = CONTAINER_TIMEOUT) -> list[str]:
    """Wait until exactly `count` running containers carry this run's label."""
    return wait_until(
        lambda: (ids := containers(run_id, running_only=True)) and len(ids) == count and ids,
        timeout,
        f"{count} running container(s) labelled {TEST_LABEL}={run_id}",
        interval=0.2,
    )


def wait_no_containers(run_id: str, timeout: float = CLEANUP_TIMEOUT) -> None:
    wait_until(lambda: not containers(run_id), timeout,
               f"no containers labelled {TEST_LABEL}={run_id}", interval=0.2)


def connection_stream_dirs(stream_dir: Path) -> list[Path]:
    """The connection directories under a stream directory (`sshpod-INSTANCE/CONNECTION`)."""
    return [conn for instance in stream_dir.iterdir() if instance.is_dir() for conn in instance.iterdir()]


def is_static_executable(path: Path) -> bool:
    proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    return "not a dynamic executable" in text or "statically linked" in text


def build_sh_only_image(tag: str, busybox: Path = Path("/bin/busybox")) -> None:
    """An image whose root file system is a static busybox and /bin/sh, nothing else."""
    if not busybox.exists() or not is_static_executable(busybox):
        raise AssertionError(f"{busybox} must be a statically linked busybox (Debian package busybox-static)")
    with tempfile.TemporaryDirectory(prefix="sshpod-sh-only.") as tmp:
        root = Path(tmp) / "rootfs"
        (root / "bin").mkdir(parents=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
        tar = subprocess.run(["tar", "--numeric-owner", "--owner=0", "--group=0", "-C", str(root), "-c", "."],
                             capture_output=True, check=True)
        docker("import", "--change", 'CMD ["/bin/sh"]', "-", tag, input=tar.stdout)


# --------------------------------------------------------------------------------------------
# Raw TCP


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def connect_raw(port: int, timeout: float = 30) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_until_eof(sock: socket.socket, timeout: float) -> bytes:
    """Read until the peer closes (EOF or reset). Fails if it stays open past `timeout`."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return data
        except socket.timeout:
            raise WaitTimeout(f"connection still open after {timeout:g} s (received {data[:200]!r})") from None
        if not chunk:
            return data
        data += chunk


def read_banner(sock: socket.socket, timeout: float = 30) -> bytes:
    """Read the server's SSH identification line."""
    sock.settimeout(timeout)
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(256)
        if not chunk:
            raise AssertionError(f"connection closed before the SSH banner (received {data!r})")
        data += chunk
    return data.split(b"\n", 1)[0]


class TcpProxy:
    """A loopback TCP proxy to `target_port`. `freeze()` stops forwarding in both directions
    while keeping every socket open, as when the network between client and server dies;
    `cut()` closes every connection and refuses new ones until `resume()`, as when the server
    goes down. A load balancer's `header` (PROXY protocol) is sent first on each connection,
    which comes from `source_ip` when one is given."""

    def __init__(self, target_port: int, header: bytes = b"", source_ip: str | None = None):
        self.target_port = target_port
        self.header = header
        self.source_ip = source_ip
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._refusing = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30,
                                                    source_address=(self.source_ip, 0) if self.source_ip else None)
                upstream.settimeout(None)
                upstream.sendall(self.header)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                self.connections += 1
            pair, ended = [client, upstream], [0]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, pair, ended), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: list[socket.socket], ended: list[int]) -> None:
        try:
            self._forward(src, dst)
        finally:
            # Both ways done: the connection's sockets go, so a long-lived proxy does not
            # pile up descriptors (a frozen proxy's pumps never get here).
            with self._lock:
                ended[0] += 1
                last = ended[0] == 2
                if last:
                    self._sockets = [s for s in self._sockets if s not in pair]
            if last:
                for sock in pair:
                    sock.close()

    def _forward(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            self._flowing.wait()
            if self._closed:
                return
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            self._flowing.wait()  # a frozen proxy holds what it read
            if self._closed:
                return
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def freeze(self) -> None:
        self._flowing.clear()

    def cut(self) -> None:
        with self._lock:
            self._refusing = True
            sockets, self._sockets = self._sockets, []
        self._shut(sockets)

    def resume(self) -> None:
        with self._lock:
            self._refusing = False

    @staticmethod
    def _shut(sockets: list[socket.socket]) -> None:
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
        self._flowing.set()
        self._listener.close()
        self._shut(sockets)


def read_line(stream, timeout: float) -> bytes:
    """Read one line from a pipe (by file descriptor, unbuffered) within `timeout`."""
    import select

    fd = stream.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    # poll, not select: a process with many descriptors open has numbers past select's 1024.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        ready = poller.poll(max(0.0, remaining) * 1000)
        if not ready:
            raise WaitTimeout(f"no complete line within {timeout:g} s (received {data!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            raise AssertionError(f"end of output before a complete line (received {data!r})")
        data += chunk
    return data
