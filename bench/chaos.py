#!/usr/bin/env python3
"""The chaos run: many clients, several sshpod instances, faults at random moments, and at the
end the books: nothing left behind, nothing lost.

Started by bench/chaos, which ensures Docker, the guest image and the venv first. A seed makes
the run's plan (which scenario each cycle runs, against which instance, and which fault comes
after which cycle) the same every time; the interleaving of the clients is the machine's.

Scenarios (one per cycle, `--clients` at a time): logins that succeed and fail (a wrong key, an
unknown user), PTY sessions and commands with stdin through asyncssh, bulk transfers both ways
through OpenSSH verified by SHA-256, sftp put and get, `ssh -L`, a client killed mid-transfer
(SIGKILL), a connection dropped without FIN (a frozen loopback relay that never closes).
Faults (after random cycles; `--faults` picks them): `kill -9` of an instance and its restart,
a frozen engine (SIGSTOP of dockerd for a few seconds, always resumed), a frozen kube-sim (its
API server gone quiet), a restarted kube-sim (SIGTERM and a new one at the same address with
the same credentials, its pods and Leases gone: it keeps objects in memory only), the S3 store
out of reach and back (a relay in front of it refusing connections), the S3 spool's disk full
and freed (a small tmpfs of its own, that instance with `audit.required: true`).

`--soak DURATION --rate R` (bench/soak.py) replaces the cycles with a steady mix started at a
fixed rate and no faults, and writes memory, descriptors, login latency and throughput over
time (a markdown table, a PNG) before the same books.

The books, once every client has ended: containers (or pods), volumes, FIFOs and stream
directories, sshpod's temporary files, Leases: none left; every connection a client saw log in
has a recording holding its token (one whose instance was killed -9 before its recorder wrote
what the client saw is counted apart), every recording is complete and passes `sshpod audit
verify` (the S3 instance's in the bucket, its spool empty); each instance's memory and
descriptors back near the level it had after its first login; every failure a client saw is a
documented message. Exits 1 if the books do not balance.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import datetime as dt
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable

# asyncssh's import warns that DSA is deprecated; not ours to act on.
warnings.filterwarnings("ignore", message=".*DSA is deprecated")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "tests" / "kube_sim"))
import harness as h  # noqa: E402

LABEL = "sshpod-chaos"
MiB = 1024 * 1024
BUCKET = "recordings"
MOTO_SERVER = REPO / ".venv-moto" / "bin" / "moto_server"
# The S3 instance's spool disk when the run fills it (spool-full): room for the recordings of
# a few cycles' sessions (no streams are intercepted), so a full disk is a short event.
SPOOL_DISK = 32 * MiB
# Memory and descriptors at the end, against each process's level after its first login.
RSS_TOLERANCE = 64 * MiB
FD_TOLERANCE = 16
# How long the books may take to balance once the clients ended: sessions dropped without FIN
# need the server's keepalives (2 s x 2), a killed instance's containers its successor's sweep.
BOOKS_DEADLINE = 120
OP_TIMEOUT = 120
# A kill -9 this soon after a client saw something may come before the recorder wrote it.
IN_FLIGHT = 5.0
TOKEN_RE = re.compile(rb"chaos-[0-9a-f]{12}")

SCENARIOS = {
    # name: weight
    "login": 4, "wrong-key": 1, "unknown-user": 1, "pty": 2, "exec-stdin": 2, "upload": 2,
    "download": 2, "sftp": 2, "forward": 1, "kill-mid-transfer": 2, "drop-without-fin": 1,
}
# The faults, in the order `--faults` names them; those only a kube-sim run can have.
FAULTS = ["kill-9", "freeze-engine", "s3-down", "spool-full", "freeze-kube-sim", "kube-sim-restart"]
KUBE_FAULTS = {"freeze-kube-sim", "kube-sim-restart"}
# Scenarios that fail by design; the others are expected to succeed unless a fault was around.
FAILING = {"wrong-key", "unknown-user"}

# What a client may see when something goes wrong: OpenSSH's and asyncssh's words for a server
# that is gone, refused or slow, and sshpod's own messages (crates/sshpod-core/src/error.rs,
# the README's audit section).
DOCUMENTED = [
    r"Permission denied \(publickey",
    r"Connection refused",
    r"Connection reset by peer",
    r"Connection closed by \S+ port \d+",
    r"kex_exchange_identification",
    r"Broken pipe",
    r"client_loop: send disconnect",
    r"Connection to \S+ closed by remote host",
    r"ConnectionLost|Connection lost",
    r"sshpod: the container engine is unavailable",
    r"sshpod: cannot start your container",
    r"sshpod: your (container|pod) stopped while the command ran",
    r"sshpod: your pod went away while the command ran",
    r"sshpod: the command ended without an exit status",  # the API server away when asked why
    r"sshpod: the server is shutting down",
    r"sshpod: sessions cannot be recorded now",
    r"sshpod: the session's recording (failed|fell behind), so the session is ended",
    r"sshpod: cannot run `[^`]+` in your container",
    r"sshpod: cannot connect to \S+ inside your container",
    r"sshpod: cannot set up your user",
    r"Connection timed out",
    r"^Connection closed$",  # sftp, when its ssh ends
    r"banner exchange",
]
DOCUMENTED_RE = [re.compile(p) for p in DOCUMENTED]
# Lines of a failed client that are not the failure (sftp's echo of its batch, host key notes).
# sshpod's login progress (README, "login progress"): what it is doing, not a failure.
NOISE_RE = re.compile(r"^(sftp> |Warning: Permanently added|[0-9a-f]{64}\b|chaos-"
                      r"|sshpod: (starting your container|waiting for your container to start)\b)")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S")


def say(text: str) -> None:
    print(f"[{now()}] {text}", flush=True)


class Unexplained(Exception):
    """A scenario's outcome that no fault and no documented message explains."""


class KubeRestartKilled(Exception):
    """A command killed (status 128+N, nothing said) while kube-sim was restarting."""


class Ended(Exception):
    """A command ended without success; the message is what its stderr said."""


# --------------------------------------------------------------------------------------------
# Processes the run owns and must always undo


class Frozen:
    """Processes stopped with SIGSTOP; resumed in a finally, at exit and on SIGINT/SIGTERM."""

    def __init__(self) -> None:
        self._pids: set[int] = set()
        self._lock = threading.Lock()
        atexit.register(self.resume_all)

    def freeze(self, pid: int, seconds: float) -> None:
        with self._lock:
            self._pids.add(pid)
        try:
            os.kill(pid, signal.SIGSTOP)
            threading.Event().wait(seconds)  # the fault itself lasts this long
        finally:
            self.resume(pid)

    def resume(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        with self._lock:
            self._pids.discard(pid)

    def resume_all(self) -> None:
        with self._lock:
            pids = list(self._pids)
        for pid in pids:
            self.resume(pid)


FROZEN = Frozen()


def _on_signal(signum, _frame):
    FROZEN.resume_all()
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------------------------
# The S3 store: moto_server behind a relay that can refuse connections (the store "down")


class Store:
    def __init__(self, work: Path):
        if not MOTO_SERVER.is_file():
            raise SystemExit(f"{MOTO_SERVER} is missing: scripts/lib.sh's ensure_venv installs it")
        self.port = h.free_port()
        self.log = open(work / "moto.log", "ab")
        self.proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        h.wait_until(lambda: h.port_open(self.port), 60, "moto_server listening")
        self.request("PUT", f"/{BUCKET}")
        self.relay = h.TcpProxy(self.port)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.relay.port}"

    # moto checks that a request names a credential, not its signature.
    AUTH = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, "
            "Signature=00")

    def request(self, method: str, path: str) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     headers={"Authorization": self.AUTH})
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.read()

    def keys(self) -> list[str]:
        out: list[str] = []
        token = ""
        while True:
            query = f"/{BUCKET}?list-type=2&max-keys=1000"
            if token:
                query += "&continuation-token=" + urllib.request.quote(token, safe="")
            listing = self.request("GET", query).decode()
            out += re.findall(r"<Key>([^<]+)</Key>", listing)
            more = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", listing)
            if not more:
                return out
            token = more.group(1)

    def get(self, key: str) -> bytes:
        return self.request("GET", f"/{BUCKET}/{urllib.request.quote(key)}")

    def stop(self) -> None:
        self.relay.close()
        self.proc.kill()
        self.proc.wait(30)
        self.log.close()


# --------------------------------------------------------------------------------------------
# The spool's disk: a small tmpfs of its own that a filler file fills and its removal frees


class SpoolDisk:
    """A tmpfs of `size` bytes at `mount`; the spool is a directory on it."""

    def __init__(self, mount: Path, size: int):
        self.mount = mount
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "sshpod-chaos-spool", str(mount)],
                       check=True)
        atexit.register(self.unmount)
        self.filler = mount / "filler"
        self.spans: list[tuple[float, float]] = []  # (full from, freed at), monotonic

    def fill(self) -> None:
        """Writes the filler until the disk says ENOSPC, in smaller pieces as it nears full."""
        self.spans.append((time.monotonic(), float("inf")))
        with open(self.filler, "ab", buffering=0) as f:
            for piece in (MiB, 4096, 1):
                block = bytes(piece)
                while True:
                    try:
                        f.write(block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)
        start, _ = self.spans[-1]
        self.spans[-1] = (start, time.monotonic())

    def was_full(self, start: float, end: float) -> bool:
        """True when the disk was full at some time between `start` and `end`."""
        return any(a <= end and start <= b for a, b in self.spans)

    def unmount(self, keep: Path | None = None) -> None:
        """Unmounts the disk; with `keep`, its spool is copied there first (a tmpfs forgets)."""
        if keep and os.path.ismount(self.mount):
            shutil.copytree(self.mount, keep, symlinks=True, ignore_dangling_symlinks=True, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("filler"))
        if os.path.ismount(self.mount):
            subprocess.run(["umount", "-l", str(self.mount)], check=False)


# --------------------------------------------------------------------------------------------
# sshpod instances


class Instance:
    """One sshpod process with a fixed port and its own recordings; restarted after a kill."""

    def __init__(self, name: str, config: dict, work: Path, sshpod: Path, store: Store | None,
                 spool_disk: int | None = None):
        self.name = name
        self.store = store
        self.dir = work / name
        self.dir.mkdir()
        self.port = h.free_port()
        # With a disk of its own (the spool-full fault) the spool must be recorded or refused:
        # `audit.required`, the README's promise that nothing a session did goes unrecorded.
        self.disk = SpoolDisk(self.dir / "spool-disk", spool_disk) if store and spool_disk else None
        self.records = (self.disk.mount if self.disk else self.dir) / ("spool" if store else "recordings")
        self.records.mkdir()
        config = h.deep_merge(config, {"ssh": {"listen": f"127.0.0.1:{self.port}"}})
        if store:
            audit = {"storage": "s3", "s3": {
                "local": str(self.records), "bucket": BUCKET, "endpoint": store.endpoint, "region": "us-east-1",
                "accessKey": "chaos-access", "secretKey": "chaos-secret", "pathStyleAccess": True}}
        else:
            audit = {"storage": "file", "file": {"directory": str(self.records)}}
        config = h.deep_merge(config, {"audit": {"enable": True, "format": "sshpod", **audit}})
        if self.disk:
            config = h.deep_merge(config, {"audit": {"required": True}})
        self.config_path = self.dir / "config.yaml"
        self.config_path.write_text("# written by bench/chaos\n" + h.to_yaml(config) + "\n")
        self.sshpod = sshpod
        self.gateway: h.Gateway | None = None
        self.logs: list[str] = []
        self.baseline: tuple[int, int] | None = None
        self.lock = threading.Lock()  # held while the instance is down or restarting
        self.starts = 0
        self.kills: list[float] = []  # when it was killed (monotonic)

    def start(self) -> None:
        os.environ["SSHPOD_BIN"] = str(self.sshpod)
        self.gateway = h.Gateway(f"{self.name}.{self.starts}", self.config_path)
        self.starts += 1
        self.gateway.wait_ready()
        self.baseline = None

    def pid(self) -> int:
        assert self.gateway is not None
        return self.gateway.proc.pid

    def usage(self) -> tuple[int, int]:
        """(RSS bytes, open descriptors) of the running process."""
        pid = self.pid()
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd"))

    def kill9(self) -> None:
        with self.lock:
            assert self.gateway is not None
            self.kills.append(time.monotonic())
            self.gateway.signal(signal.SIGKILL)
            self.gateway.wait_exit(30)
            self.gateway.wait_drained()
            self.logs.append(self.gateway.log)
            self.start()

    def stop(self) -> int | None:
        if self.gateway is None:
            return None
        status = self.gateway.stop(60)
        self.logs.append(self.gateway.log)
        return status

    def log_text(self) -> str:
        return "\n".join(self.logs + ([self.gateway.log] if self.gateway and self.gateway.proc.poll() is None else []))


# --------------------------------------------------------------------------------------------
# The ledger: what happened, and what the clients saw


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: Counter = Counter()       # (scenario, outcome)
        self.faults: Counter = Counter()
        self.messages: Counter = Counter()       # documented messages seen
        self.unknown: list[str] = []             # messages nobody documented
        self.unexplained: list[str] = []         # wrong data, hangs, failures without a fault
        self.tokens: dict[str, tuple[str, str]] = {}  # token -> (instance, scenario) of logged-in connections
        self.unfinished: set[str] = set()  # tokens of sessions the client saw start but not succeed
        self.spans: dict[str, tuple[float, float]] = {}  # token -> (start, end) of its cycle (monotonic)
        self.login_times: list[tuple[float, float]] = []  # (end, seconds) of each `login` that succeeded
        self.moved: list[tuple[float, int]] = []  # (end, bytes) of each transfer that arrived intact

    def add(self, scenario: str, outcome: str) -> None:
        with self.lock:
            self.outcomes[(scenario, outcome)] += 1

    def logged_in(self, token: str, instance: str, scenario: str, succeeded: bool = True) -> None:
        """A session printed `token`; `succeeded` when its client also saw it end well."""
        with self.lock:
            self.tokens[token] = (instance, scenario)
            if not succeeded:
                self.unfinished.add(token)

    def transferred(self, size: int) -> None:
        with self.lock:
            self.moved.append((time.monotonic(), size))

    def classify(self, text: str) -> list[str]:
        """The documented messages in a client's error output; unknown lines are recorded."""
        found = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if NOISE_RE.search(line):
                continue
            match = next((r.pattern for r in DOCUMENTED_RE if r.search(line)), None)
            with self.lock:
                if match:
                    self.messages[match] += 1
                    found.append(match)
                else:
                    self.unknown.append(line[:300])
        return found


# --------------------------------------------------------------------------------------------
# Scenarios


class Context:
    """What one cycle needs: its random source, the instance it talks to, the run's keys."""

    def __init__(self, run: "Chaos", cycle: int, rng: random.Random, instance: Instance):
        self.run = run
        self.cycle = cycle
        self.rng = rng
        self.instance = instance
        self.starts = instance.starts
        self.started = time.monotonic()
        self.token = f"chaos-{rng.getrandbits(48):012x}"
        self.conn: Any = None  # the asyncssh connection, once made
        self.procs: list[subprocess.Popen] = []
        self.tmp = run.work / "client" / f"c{cycle}"
        self.tmp.mkdir(parents=True)

    def track(self, proc: subprocess.Popen) -> None:
        """A client process of this cycle: ended and its pipes closed when the cycle ends."""
        self.procs.append(proc)
        self.run.track(proc)

    def release(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe:
                    pipe.close()
        self.run.untrack(self.procs)

    def killed(self) -> bool:
        """True when the cycle's instance was killed (or is restarting) since the cycle began."""
        return self.instance.starts != self.starts or self.instance.lock.locked()

    def explain(self, text: str) -> bool:
        """True when a failure is explained: a documented message, or nothing said at all by a
        client whose instance was killed meanwhile. Unknown lines are recorded."""
        if self.run.ledger.classify(text):
            return True
        if not text.strip() and self.killed():
            with self.run.ledger.lock:
                self.run.ledger.messages["(nothing: its instance was killed meanwhile)"] += 1
            return True
        return False

    def client(self, port: int | None = None, **kw: Any) -> h.Client:
        kw.setdefault("key", self.run.keys["alice"])
        return h.Client(port or self.instance.port, **kw)

    def payload(self, low: int, high: int) -> Path:
        path = self.tmp / "payload"
        path.write_bytes(self.rng.randbytes(self.rng.randint(low, high)))
        return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expect_ok(ctx: Context, result: h.Result, what: str) -> bool:
    """True when the client succeeded; otherwise the failure is classified and False returned."""
    if result.returncode == 0:
        return True
    if result.returncode in (137, 143) and not result.stderr.strip() and ctx.run.kube_restarted_since(ctx.started):
        # kube-sim's stop killed the pod's processes while its API was away: the command's
        # status is the signal's, as the README's known limits say (128+N), with no message.
        with ctx.run.ledger.lock:
            ctx.run.ledger.messages["(exit 128+N: a kube-sim restart killed the command)"] += 1
        return False
    found = ctx.explain(result.stderr)
    if not found:
        raise Unexplained(f"{what}: rc={result.returncode} stderr={result.stderr[-500:]!r}")
    return False


def sc_login(ctx: Context) -> str:
    began = time.monotonic()
    result = ctx.client().ssh(f"echo {ctx.token}", timeout=OP_TIMEOUT)
    if result.returncode == 0:
        if result.stdout.strip() != ctx.token:
            raise Unexplained(f"login printed {result.stdout!r}")
        ended = time.monotonic()
        ctx.run.ledger.logged_in(ctx.token, ctx.instance.name, "login")
        with ctx.run.ledger.lock:
            ctx.run.ledger.login_times.append((ended, ended - began))
        return "ok"
    expect_ok(ctx, result, "login")
    return "failed"


def sc_wrong_key(ctx: Context) -> str:
    result = ctx.client(key=ctx.run.keys["stranger"]).ssh("true", timeout=OP_TIMEOUT)
    if result.returncode == 0:
        raise Unexplained("a stranger's key logged in")
    found = ctx.explain(result.stderr)
    if not found:
        raise Unexplained(f"wrong key: {result.stderr[-300:]!r}")
    return "refused"


def sc_unknown_user(ctx: Context) -> str:
    user = f"nobody{ctx.rng.randrange(1000)}"
    result = ctx.client(user=user).ssh("true", timeout=OP_TIMEOUT)
    if result.returncode == 0:
        raise Unexplained(f"unknown user {user} logged in")
    if not ctx.explain(result.stderr):
        raise Unexplained(f"unknown user: {result.stderr[-300:]!r}")
    return "refused"


def _keep_disconnect_reasons() -> None:
    """asyncssh drops the reason of a disconnect "by application" (code 11, what sshpod sends
    when it ends a session) and tells the channels only "SSH connection closed": each
    connection keeps it here as `chaos_reason`, so the failure is classified by what the
    server said, as with OpenSSH."""
    from asyncssh import connection
    from asyncssh.constants import MSG_DISCONNECT
    from asyncssh.packet import SSHPacket
    handlers = connection.SSHConnection._packet_handlers
    original = handlers[MSG_DISCONNECT]

    def process(self, pkttype, pktid, packet):
        try:
            copy = SSHPacket(packet.get_remaining_payload())
            copy.get_uint32()
            self.chaos_reason = copy.get_string().decode(errors="replace")
        except Exception:  # noqa: BLE001 - a malformed message is asyncssh's to refuse
            pass
        return original(self, pkttype, pktid, packet)

    handlers[MSG_DISCONNECT] = process


async def _asyncssh_connect(ctx: Context):
    import asyncssh
    conn = await asyncio.wait_for(asyncssh.connect(
        "127.0.0.1", ctx.instance.port, username="alice", client_keys=[str(ctx.run.keys["alice"])],
        known_hosts=None, agent_path=None), 60)
    ctx.conn = conn
    return conn


def _asyncssh_failure(ctx: Context, exc: BaseException) -> str:
    # The server's reason for closing the connection, when it gave one, is the failure.
    reason = getattr(ctx.conn, "chaos_reason", None)
    text = reason or f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
        text = "Connection refused" if exc.errno == errno.ECONNREFUSED else "Connection reset by peer"
    if not ctx.explain(text):
        raise Unexplained(f"asyncssh: {text}")
    return "failed"


def sc_pty(ctx: Context) -> str:
    async def go() -> str:
        async with await _asyncssh_connect(ctx) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24), encoding=None)
            try:
                proc.stdin.write(f"echo {ctx.token}-$((6*7))\n".encode())
            except BrokenPipeError:
                pass  # the session ended at once: stdout ends and stderr says why
            seen = b""
            want = f"{ctx.token}-42".encode()
            while want not in seen:
                chunk = await asyncio.wait_for(proc.stdout.read(4096), 60)
                if not chunk:
                    if getattr(conn, "chaos_reason", None):
                        raise ConnectionError(conn.chaos_reason)
                    # sshpod says why a session could not start on the channel's stderr.
                    said = await asyncio.wait_for(proc.stderr.read(), 10)
                    if said:
                        raise Ended(said.decode(errors="replace"))
                    raise Unexplained(f"the terminal ended before the answer: {seen[-300:]!r}")
                seen += chunk
            ctx.run.ledger.logged_in(ctx.token, ctx.instance.name, "pty")
            if ctx.rng.random() < 0.3:
                proc.change_terminal_size(100, 30)
            try:
                proc.stdin.write(b"exit 0\n")
            except BrokenPipeError:
                # The session ended under it after the answer (its pod went): what the server
                # or the terminal said last is why.
                said = getattr(conn, "chaos_reason", None) or (seen + await asyncio.wait_for(
                    proc.stdout.read(), 10)).decode(errors="replace").splitlines()[-1:]
                raise Ended(said if isinstance(said, str) else "".join(said))
            await asyncio.wait_for(proc.wait_closed(), 60)
            return "ok"
    try:
        return asyncio.run(go())
    except Unexplained:
        raise
    except Ended as exc:
        if not ctx.explain(str(exc)):
            raise Unexplained(f"pty: ended before the answer, stderr {str(exc)[-300:]!r}") from None
        return "failed"
    except Exception as exc:  # noqa: BLE001 - classified
        if isinstance(exc, asyncio.TimeoutError):
            raise Unexplained("pty: no answer within 60 s") from None
        return _asyncssh_failure(ctx, exc)


def sc_exec_stdin(ctx: Context) -> str:
    data = ctx.rng.randbytes(ctx.rng.randint(1, 512 * 1024))

    async def go() -> str:
        async with await _asyncssh_connect(ctx) as conn:
            proc = await conn.create_process(f": {ctx.token}; sha256sum", encoding=None)
            try:
                proc.stdin.write(data)
                proc.stdin.write_eof()
            except BrokenPipeError:
                pass  # the session ended at once: its status and stderr say why
            result = await asyncio.wait_for(proc.wait(), OP_TIMEOUT)
            if result.exit_status != 0:
                # The server's reason, when it ended the connection with one (asyncssh's wait
                # ends quietly then).
                said = (result.stderr or b"").decode(errors="replace").strip() or getattr(conn, "chaos_reason", "")
                if not said.strip() and result.exit_status in (137, 143) and ctx.run.kube_restarted_since(ctx.started):
                    raise KubeRestartKilled()
                # No status at all: the connection ended under it (what stderr says explains it).
                raise Ended(said)
            ctx.run.ledger.logged_in(ctx.token, ctx.instance.name, "exec-stdin")
            got = result.stdout.split()[0].decode()
            if got != sha256(data):
                raise Unexplained(f"stdin arrived changed: {got} != {sha256(data)}")
            ctx.run.ledger.transferred(len(data))
            return "ok"
    try:
        return asyncio.run(go())
    except Unexplained:
        raise
    except KubeRestartKilled:
        with ctx.run.ledger.lock:
            ctx.run.ledger.messages["(exit 128+N: a kube-sim restart killed the command)"] += 1
        return "failed"
    except Ended as exc:
        if not ctx.explain(str(exc)):
            raise Unexplained(f"exec-stdin: ended without success, stderr {str(exc)[-300:]!r}") from None
        return "failed"
    except Exception as exc:  # noqa: BLE001 - classified
        if isinstance(exc, asyncio.TimeoutError):
            raise Unexplained("exec-stdin: no answer in time") from None
        return _asyncssh_failure(ctx, exc)


def sc_upload(ctx: Context) -> str:
    payload = ctx.payload(1 * MiB, 16 * MiB)
    result = ctx.client().ssh(f": {ctx.token}; sha256sum", stdin_path=payload, timeout=OP_TIMEOUT)
    if not expect_ok(ctx, result, "upload"):
        return "failed"
    ctx.run.ledger.logged_in(ctx.token, ctx.instance.name, "upload")
    if result.stdout.split()[:1] != [sha256(payload.read_bytes())]:
        raise Unexplained(f"upload arrived changed: {result.stdout!r}")
    ctx.run.ledger.transferred(payload.stat().st_size)
    return "ok"


def sc_download(ctx: Context) -> str:
    size = ctx.rng.randint(1 * MiB, 16 * MiB)
    out = ctx.tmp / "download"
    command = (f": {ctx.token}; head -c {size} /dev/urandom > /tmp/d && sha256sum /tmp/d >&2 && cat /tmp/d")
    result = ctx.client().ssh(command, stdout_path=out, timeout=OP_TIMEOUT)
    if not expect_ok(ctx, result, "download"):
        return "failed"
    ctx.run.ledger.logged_in(ctx.token, ctx.instance.name, "download")
    data = out.read_bytes()
    told = re.search(r"[0-9a-f]{64}", result.stderr)
    if len(data) != size or not told or told.group(0) != sha256(data):
        raise Unexplained(f"download arrived changed: {len(data)} of {size} bytes, stderr {result.stderr[-200:]!r}")
    ctx.run.ledger.transferred(size)
    return "ok"


def sc_sftp(ctx: Context) -> str:
    payload = ctx.payload(64 * 1024, 8 * MiB)
    back = ctx.tmp / "back"
    batch = ctx.tmp / "batch"
    batch.write_text(f"put {payload} /tmp/{ctx.token}\nget /tmp/{ctx.token} {back}\n")
    client = ctx.client()
    result = client.run_args(client.sftp_args(opts=["-b", str(batch)]), timeout=OP_TIMEOUT)
    if not expect_ok(ctx, result, "sftp"):
        return "failed"
    ctx.run.ledger.logged_in(ctx.token, ctx.instance.name, "sftp")
    if sha256(back.read_bytes()) != sha256(payload.read_bytes()):
        raise Unexplained("sftp: the file came back changed")
    ctx.run.ledger.transferred(2 * payload.stat().st_size)
    return "ok"


def _http_get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
        return h.read_until_eof(s, 10)


def sc_forward(ctx: Context) -> str:
    local = h.free_port()
    serve = (f"mkdir -p /tmp/www && echo {ctx.token} > /tmp/www/index.html && "
             "exec busybox httpd -f -p 127.0.0.1:8080 -h /tmp/www")
    err = open(ctx.tmp / "stderr", "w+b")
    proc = ctx.client().popen(serve, opts=["-L", f"127.0.0.1:{local}:127.0.0.1:8080",
                                           "-o", "ExitOnForwardFailure=yes"], stdout=subprocess.DEVNULL, stderr=err)
    ctx.track(proc)
    try:
        def answer() -> bytes | None:
            if proc.poll() is not None:
                return b"exited"
            try:
                body = _http_get(local)
            except OSError:
                return None
            return body if ctx.token.encode() in body else None
        body = h.wait_until(answer, OP_TIMEOUT, "an answer through ssh -L", interval=0.2)
        if body == b"exited":
            err.seek(0)
            said = err.read().decode(errors="replace")
            if not said.strip() and proc.returncode in (137, 143) and ctx.run.kube_restarted_since(ctx.started):
                with ctx.run.ledger.lock:
                    ctx.run.ledger.messages["(exit 128+N: a kube-sim restart killed the command)"] += 1
                return "failed"
            if not ctx.explain(said):
                raise Unexplained(f"forward: ssh exited with {proc.returncode}")
            return "failed"
        ctx.run.ledger.logged_in(ctx.token, ctx.instance.name, "forward")
        return "ok"
    except h.WaitTimeout as exc:
        raise Unexplained(f"forward: {exc}") from None
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)
        err.close()


def started(ctx: Context, proc: subprocess.Popen, scenario: str) -> bool:
    """Waits for the session's first line (the token the command echoes first) and records the
    login; False when the client failed with a documented message (it is then ended)."""
    ctx.track(proc)
    try:
        line = h.read_line(proc.stdout, OP_TIMEOUT)
    except (AssertionError, h.WaitTimeout) as exc:
        proc.kill()
        proc.wait(30)
        rest = proc.stderr.read().decode(errors="replace")
        if ctx.explain(rest):
            return False
        raise Unexplained(f"{scenario}: no start ({exc}) {rest[-300:]!r}") from None
    if ctx.token.encode() in line:
        ctx.run.ledger.logged_in(ctx.token, ctx.instance.name, scenario, succeeded=False)
    return True


def sc_kill_mid_transfer(ctx: Context) -> str:
    upload = ctx.rng.random() < 0.5
    # The token first on stdout: stderr could wait behind a window full of stdout.
    command = f"echo {ctx.token}; " + ("cat > /dev/null" if upload else "cat /dev/zero")
    proc = ctx.client().popen(command, stdin=subprocess.PIPE if upload else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not started(ctx, proc, "kill-mid-transfer"):
        return "failed"
    want = ctx.rng.randint(64 * 1024, 8 * MiB)
    moved = 0
    # A transfer that stops moving is killed by this watchdog and counted as hung.
    watchdog = threading.Timer(OP_TIMEOUT, proc.kill)
    watchdog.start()
    try:
        if upload:
            chunk = bytes(64 * 1024)
            while moved < want:
                proc.stdin.write(chunk)
                moved += len(chunk)
        else:
            while moved < want:
                data = proc.stdout.read1(64 * 1024)
                if not data:
                    break
                moved += len(data)
    except OSError:
        pass
    finally:
        watchdog.cancel()
    if proc.poll() is not None and moved < want:
        rest = proc.stderr.read().decode(errors="replace")
        if not ctx.explain(rest):
            raise Unexplained(f"kill-mid-transfer: the transfer stopped at {moved} bytes: {rest[-300:]!r}")
        return "failed"
    proc.kill()
    proc.wait(30)
    return "killed"


def sc_drop_without_fin(ctx: Context) -> str:
    relay = h.TcpProxy(ctx.instance.port)
    ctx.run.hold(relay)
    proc = ctx.client(port=relay.port).popen(f"echo {ctx.token}; exec sleep 600")
    if not started(ctx, proc, "drop-without-fin"):
        return "failed"
    # The network dies: nothing more passes either way and no socket is closed. The relay
    # stays frozen until the books are done; the client goes, its socket held by the relay.
    relay.freeze()
    proc.kill()
    proc.wait(30)
    return "dropped"


SCENARIO_FNS: dict[str, Callable[[Context], str]] = {
    "login": sc_login, "wrong-key": sc_wrong_key, "unknown-user": sc_unknown_user, "pty": sc_pty,
    "exec-stdin": sc_exec_stdin, "upload": sc_upload, "download": sc_download, "sftp": sc_sftp,
    "forward": sc_forward, "kill-mid-transfer": sc_kill_mid_transfer, "drop-without-fin": sc_drop_without_fin,
}


# --------------------------------------------------------------------------------------------
# The run


class Chaos:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.backend = args.backend
        self.run_id = f"{args.seed}-{os.urandom(4).hex()}"
        self.work = Path(tempfile.mkdtemp(prefix="sshpod-chaos."))
        self.tmpdir = self.work / "tmp"  # sshpod's TMPDIR: its temporary files must go
        self.tmpdir.mkdir()
        self.stream_dir = self.work / "streams"
        self.ledger = Ledger()
        self.relays: list[h.TcpProxy] = []
        self.held: list[tuple[float, h.TcpProxy]] = []  # (frozen at, relay), see hold()
        self.procs: list[subprocess.Popen] = []
        self.procs_lock = threading.Lock()
        self.instances: list[Instance] = []
        self.store: Store | None = None
        self.kube = None
        self.kube_port = 0
        self.kube_instances: list[str] = []  # every kube-sim of the run (a restart makes one)
        self.kube_restarts: list[float] = []  # when kube-sim was stopped to restart (monotonic)
        self.keys: dict[str, Path] = {}
        self.done = 0
        self.done_cond = threading.Condition()
        self.stop = threading.Event()  # set when the clients ended: faults end with them
        self.books: list[tuple[str, str, bool]] = []  # (what, figure, balanced)

    def track(self, proc: subprocess.Popen) -> None:
        with self.procs_lock:
            self.procs.append(proc)

    def untrack(self, procs: list[subprocess.Popen]) -> None:
        with self.procs_lock:
            self.procs = [p for p in self.procs if p not in procs]

    def hold(self, relay: h.TcpProxy) -> None:
        """Keeps a frozen relay (a connection dropped without FIN) until sshpod has long given
        up on it (BOOKS_DEADLINE, many times its keepalive), then closes it, so a long run does
        not pile up sockets; a relay still open then is the books' to find."""
        now = time.monotonic()
        with self.procs_lock:
            self.relays.append(relay)
            self.held.append((now, relay))
            old = [r for t, r in self.held if now - t > BOOKS_DEADLINE]
            self.held = [(t, r) for t, r in self.held if now - t <= BOOKS_DEADLINE]
        for r in old:
            r.close()

    # set-up -------------------------------------------------------------------------------

    def setup(self) -> None:
        if self.backend == "docker":
            self.volumes_before = set(h.docker("volume", "ls", "-q").stdout.decode().split())
        keys = self.work / "keys"
        keys.mkdir()
        for name in ("alice", "stranger"):
            path = keys / f"id_{name}"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@chaos", "-f", str(path)],
                           check=True, stdin=subprocess.DEVNULL)
            self.keys[name] = path
        (self.work / "authorized_keys").mkdir()
        shutil.copy(self.keys["alice"].with_suffix(".pub"), self.work / "authorized_keys" / "alice")
        config: dict = {
            "ssh": {"hostkeys": [str(self.work / "ssh_host_ed25519_key")], "loginGraceTime": "60s",
                    "clientAliveInterval": "2s", "clientAliveCountMax": 2, "shutdownTimeout": "10s"},
            "log": {"level": "info", "format": "text"},
            "auth": {"publicKey": {"method": "authorizedKeys",
                                   "authorizedKeys": {"file": str(self.work / "authorized_keys" / "%u")}}},
            "security": {"forwarding": {"forwardingMode": "enable"}},
        }
        if self.backend == "docker":
            config["docker"] = {"connection": {"streamDirectory": str(self.stream_dir)},
                                "execution": {"container": {"image": h.GUEST_IMAGE, "labels": {LABEL: self.run_id}},
                                              "mode": "connection"}}
        else:
            import kubesim
            os.environ["KUBE_SIM_BIN"] = str(self.args.kube_sim)
            (self.work / "kube-sim").mkdir()
            self.kube = self.start_kube_sim()
            config["backend"] = "kubernetes"
            config["kubernetes"] = {"connection": {"kubeconfig": str(self.kube.kubeconfig)},
                                    "pod": {"metadata": {"labels": {LABEL: self.run_id}}},
                                    "timeouts": {"instanceLease": "15s"}}
        if not self.args.no_s3:
            self.store = Store(self.work)
        # sshpod's temporary files go here (after kube-sim and moto started: theirs do not).
        os.environ["TMPDIR"] = str(self.tmpdir)
        tempfile.tempdir = None
        for i in range(self.args.instances):
            store = self.store if i == 0 else None
            disk = SPOOL_DISK if store and "spool-full" in self.fault_kinds() else None
            instance = Instance(f"sshpod{i}", config, self.work, self.args.sshpod, store, disk)
            instance.start()
            self.instances.append(instance)
        say(f"{len(self.instances)} sshpod instances on {self.backend}"
            f"{' (sshpod0 records to S3)' if self.store else ''}; work directory {self.work}")

    def start_kube_sim(self):
        """kube-sim on a fixed port with its credentials kept, so a restarted one is the same
        cluster to sshpod's kubeconfig (its objects and pods are not kept: see restart_kube_sim)."""
        import kubesim
        if not self.kube_port:
            self.kube_port = h.free_port()
        kube = kubesim.KubeSim(self.work / "kube-sim", "--credentials", str(self.work / "kube-sim" / "credentials"),
                               listen=f"127.0.0.1:{self.kube_port}")
        self.kube_instances.append(kube.instance)
        return kube

    def kube_restarted_since(self, start: float) -> bool:
        return any(t >= start for t in self.kube_restarts)

    def restart_kube_sim(self) -> None:
        """SIGTERM and start again. kube-sim keeps its objects in memory and removes its
        containers when it stops: the cluster comes back at the same address with the same
        credentials but without its pods and Leases, as a one-node cluster whose control plane
        lost its state. sshpod must end the sessions whose pods went (documented messages),
        take its Leases again and serve new logins."""
        self.kube_restarts.append(time.monotonic())
        status = self.kube.stop()
        if status != 0:
            self.book("kube-sim's exit status at a restart", status, False)
        self.kube = self.start_kube_sim()

    def warm_up(self, instance: Instance, settle: bool = True) -> None:
        """A first login, then the level memory and descriptors must come back to. At the
        start the level is taken once the login's container is gone; after a restart in the
        middle of the run (other logins going on), at once."""
        result = h.Client(instance.port, key=self.keys["alice"]).ssh("true", timeout=OP_TIMEOUT)
        if result.returncode != 0:
            raise SystemExit(f"{instance.name}: the warm-up login failed: {result!r}\n{instance.log_text()[-3000:]}")
        if settle:
            h.wait_until(lambda: not self.leftovers(), BOOKS_DEADLINE, "the warm-up's container to go", interval=0.2)
        instance.baseline = instance.usage()

    # the plan -----------------------------------------------------------------------------

    def plan(self) -> tuple[list[tuple[str, int]], dict[int, str]]:
        rng = random.Random(self.args.seed)
        names, weights = zip(*SCENARIOS.items())
        cycles = [(rng.choices(names, weights)[0], rng.randrange(len(self.instances)))
                  for _ in range(self.args.cycles)]
        kinds = self.fault_kinds()
        # Every kind in turn (in a shuffled order each round), so a short run has each of them.
        faults: dict[int, str] = {}
        order: list[str] = []
        at = rng.randint(2, max(2, self.args.fault_every))
        while kinds and at < self.args.cycles - 2:
            if not order:
                order = rng.sample(kinds, len(kinds))
            faults[at] = order.pop()
            at += rng.randint(2, 2 * self.args.fault_every - 2)
        return cycles, faults

    def fault_kinds(self) -> list[str]:
        """The faults this run injects: `--faults`, or every one that fits the backend."""
        if self.args.soak:
            return []
        fits = [k for k in FAULTS if (self.backend == "kube" or k not in KUBE_FAULTS)
                and (self.store or k not in ("s3-down", "spool-full"))]
        if self.args.faults is None:
            return fits
        wanted = [k for k in self.args.faults.split(",") if k]
        for kind in wanted:
            if kind not in fits:
                raise SystemExit(f"--faults: {kind!r} is not a fault of this run (these are: {', '.join(fits)})")
        return wanted

    def run_cycles(self) -> None:
        cycles, faults = self.plan()
        say(f"plan: {len(cycles)} cycles, {len(faults)} faults, {self.args.clients} clients at a time")
        next_cycle = iter(enumerate(cycles))
        lock = threading.Lock()
        stop = self.stop

        def worker() -> None:
            while not stop.is_set():
                with lock:
                    item = next(next_cycle, None)
                if item is None:
                    return
                cycle, (scenario, index) = item
                self.run_cycle(cycle, scenario, index)
                if self.done % 20 == 0:
                    say(f"{self.done}/{len(cycles)} cycles")

        def injector() -> None:
            fault_rng = random.Random(f"{self.args.seed}:faults")
            for at, kind in sorted(faults.items()):
                with self.done_cond:
                    while self.done < at and not stop.is_set():
                        self.done_cond.wait(1)
                if stop.is_set():
                    return
                self.inject(kind, fault_rng)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.args.clients)]
        fault_thread = threading.Thread(target=injector, daemon=True)
        for t in threads:
            t.start()
        fault_thread.start()
        try:
            for t in threads:
                t.join()
        finally:
            stop.set()
            with self.done_cond:
                self.done_cond.notify_all()
            fault_thread.join(120)
            FROZEN.resume_all()
            if self.store:
                self.store.relay.resume()

    def run_cycle(self, cycle: int, scenario: str, index: int) -> str:
        """Runs one scenario against one instance and books its outcome."""
        rng = random.Random(f"{self.args.seed}:{cycle}")
        instance = self.instances[index]
        ctx = Context(self, cycle, rng, instance)
        try:
            outcome = SCENARIO_FNS[scenario](ctx)
        except Unexplained as exc:
            outcome = "unexplained"
            with self.ledger.lock:
                self.ledger.unexplained.append(f"cycle {cycle} {scenario} on {instance.name}: {exc}")
        except h.WaitTimeout as exc:
            outcome = "hung"
            with self.ledger.lock:
                self.ledger.unexplained.append(f"cycle {cycle} {scenario} on {instance.name}: {exc}")
        finally:
            ctx.release()
            shutil.rmtree(ctx.tmp, ignore_errors=True)
            with self.ledger.lock:
                self.ledger.spans[ctx.token] = (ctx.started, time.monotonic())
        self.ledger.add(scenario, outcome)
        with self.done_cond:
            self.done += 1
            self.done_cond.notify_all()
        return outcome

    def inject(self, kind: str, rng: random.Random) -> None:
        self.ledger.faults[kind] += 1
        if kind == "kill-9":
            instance = rng.choice(self.instances)
            say(f"after cycle {self.done}, fault: kill -9 {instance.name}")
            instance.kill9()
            self.warm_up(instance, settle=False)
        elif kind == "freeze-engine":
            seconds = rng.uniform(1, 4)
            say(f"after cycle {self.done}, fault: dockerd frozen for {seconds:.1f} s")
            pid = int(subprocess.run(["pgrep", "-o", "-x", "dockerd"], capture_output=True, text=True,
                                     check=True).stdout.split()[0])
            FROZEN.freeze(pid, seconds)
        elif kind == "freeze-kube-sim":
            seconds = rng.uniform(1, 4)
            say(f"after cycle {self.done}, fault: kube-sim frozen for {seconds:.1f} s")
            FROZEN.freeze(self.kube.proc.pid, seconds)
        elif kind == "kube-sim-restart":
            say(f"after cycle {self.done}, fault: kube-sim restarted (its objects and pods lost)")
            self.restart_kube_sim()
        elif kind == "s3-down":
            assert self.store is not None
            cycles = rng.randint(3, 10)
            say(f"after cycle {self.done}, fault: the S3 store out of reach for {cycles} cycles")
            self.store.relay.cut()
            target = self.done + cycles
            with self.done_cond:
                while self.done < target and not self.stop.is_set():
                    self.done_cond.wait(OP_TIMEOUT)
            self.store.relay.resume()
        elif kind == "spool-full":
            instance = next(i for i in self.instances if i.disk)
            cycles = rng.randint(2, 6)
            say(f"after cycle {self.done}, fault: {instance.name}'s spool disk full for {cycles} cycles")
            instance.disk.fill()
            target = self.done + cycles
            try:
                with self.done_cond:
                    while self.done < target and not self.stop.is_set():
                        self.done_cond.wait(OP_TIMEOUT)
            finally:
                instance.disk.free()

    # the books ----------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """Containers (Docker) or pods (kube-sim) of this run."""
        if self.backend == "docker":
            return h.docker("ps", "-aq", "--no-trunc", "--filter", f"label={LABEL}={self.run_id}").stdout.decode().split()
        status, body = self.kube.request("GET", f"/api/v1/namespaces/default/pods?labelSelector={LABEL}%3D{self.run_id}")
        if status != 200:
            raise AssertionError(f"listing pods: {status} {body}")
        return [p["metadata"]["name"] for p in body["items"]]

    def leases(self) -> list[str]:
        status, body = self.kube.request("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases")
        if status != 200:
            raise AssertionError(f"listing leases: {status} {body}")
        return [item["metadata"]["name"] for item in body["items"]]

    def book(self, what: str, figure: Any, balanced: bool) -> None:
        self.books.append((what, str(figure), balanced))

    def wait_book(self, what: str, left: Callable[[], list], timeout: float = BOOKS_DEADLINE) -> None:
        start = time.monotonic()
        try:
            h.wait_until(lambda: not left(), timeout, what, interval=0.5)
            self.book(what, f"0 (after {time.monotonic() - start:.0f} s)", True)
        except h.WaitTimeout:
            items = left()
            self.book(what, f"{len(items)}: {' '.join(map(str, items))[:300]}", False)

    def recordings(self, instance: Instance) -> list[Path]:
        return sorted(p for p in instance.records.iterdir() if p.is_dir() and not p.name.startswith("."))

    def incomplete(self, instance: Instance) -> list[str]:
        out = []
        for entry in self.recordings(instance):
            state = instance.records / ".state" / f"{entry.name}.json"
            try:
                if not json.loads(state.read_text()).get("complete"):
                    out.append(entry.name)
            except (OSError, ValueError):
                out.append(entry.name)
        return out

    def balance(self) -> None:
        say("the clients ended; balancing the books")
        with self.procs_lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(30)
        # With every instance running: what the normal paths must remove.
        thing = "containers" if self.backend == "docker" else "pods"
        self.wait_book(f"{thing} left", self.leftovers)
        if self.backend == "kube":
            # A killed instance's Lease is its siblings' to remove once it expires: they must
            # still run for it (after the SIGTERMs nobody would).
            self.wait_book("Leases beyond one per running instance",
                           lambda: self.leases()[len(self.instances):] if len(self.leases()) > len(self.instances) else [])
        if self.backend == "kube":
            import kubesim
            self.wait_book("kube-sim's containers left",
                           lambda: [c for i in self.kube_instances for c in kubesim.docker_ids("container", i)])
        if self.backend == "docker":
            self.wait_book("stream directories left",
                           lambda: h.connection_stream_dirs(self.stream_dir) if self.stream_dir.is_dir() else [])
        for instance in self.instances:
            if instance.store:
                self.wait_book(f"{instance.name}: recordings still in the spool", lambda i=instance: self.recordings(i),
                               BOOKS_DEADLINE * 2)
            else:
                self.wait_book(f"{instance.name}: recordings not complete", lambda i=instance: self.incomplete(i))
        for instance in self.instances:
            if instance.baseline is None:
                self.book(f"{instance.name}: memory, descriptors", "no baseline", False)
                continue
            (rss0, fds0), (rss, fds) = instance.baseline, instance.usage()
            ok = rss <= rss0 + RSS_TOLERANCE and fds <= fds0 + FD_TOLERANCE
            self.book(f"{instance.name} (start {instance.starts}): RSS MiB, descriptors",
                      f"{rss0 / MiB:.1f} -> {rss / MiB:.1f}, {fds0} -> {fds}", ok)
        deleted = [f"{i.name}:{link}" for i in self.instances for link in self.open_temp_files(i)]
        self.book("temporary files held open", len(deleted), not deleted)
        # SIGTERM: each exits 0, and nothing of the run stays.
        statuses = [instance.stop() for instance in self.instances]
        self.book("exit statuses after SIGTERM", " ".join(map(str, statuses)), all(s == 0 for s in statuses))
        self.wait_book(f"{thing} left after the instances stopped", self.leftovers, 30)
        if self.backend == "kube":
            self.wait_book("Leases left", self.leases, 30)
        fifos = [p for p in self.work.rglob("*") if p.is_fifo()]
        self.book("FIFOs left", len(fifos), not fifos)
        temp = list(self.tmpdir.iterdir())
        self.book("temporary files left", len(temp), not temp)
        self.book_volumes()
        self.book_recordings()

    def open_temp_files(self, instance: Instance) -> list[str]:
        fd_dir = Path(f"/proc/{instance.pid()}/fd")
        out = []
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(self.tmpdir)) or (target.startswith("/tmp/") and target.endswith("(deleted)")):
                out.append(target)
        return out

    def book_volumes(self) -> None:
        if self.backend == "kube":
            import kubesim
            self.wait_book("kube-sim volumes left (pods' emptyDirs)",
                           lambda: [v for i in self.kube_instances for v in kubesim.docker_ids("volume", i)], 30)
            return
        # Docker: sshpod makes volumes only for homes (off here); a volume of this run's
        # containers would be unlabelled, dangling and new since the run began.
        ours = []
        for vid in h.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout.decode().split():
            if vid in self.volumes_before:
                continue
            info = json.loads(h.docker("volume", "inspect", vid).stdout)[0]
            if not info.get("Labels"):
                ours.append(vid)
        self.book("volumes left", len(ours), not ours)

    def book_recordings(self) -> None:
        texts: dict[str, bytes] = {}  # instance -> all its recordings' bytes, for the tokens
        total = 0
        for instance in self.instances:
            blobs = []
            logins = 0  # recordings with an accepted login
            if instance.store:
                for key in self.store.keys():
                    blob = self.store.get(key)
                    blobs.append(blob)
                    if key.endswith("/events.jsonl"):
                        total += 1
                        logins += b'"kind":"login-accepted"' in blob
                args = ["--config", str(instance.config_path), "audit", "verify", "--s3"]
            else:
                for entry in self.recordings(instance):
                    total += 1
                    for f in entry.iterdir():
                        blob = f.read_bytes()
                        blobs.append(blob)
                        if f.name == "events.jsonl":
                            logins += b'"kind":"login-accepted"' in blob
                args = ["--config", str(instance.config_path), "audit", "verify", "--dir", str(instance.records)]
            seen = sum(1 for name, _ in self.ledger.tokens.values() if name == instance.name)
            self.book(f"{instance.name}: recordings with a login, logins clients saw", f"{logins}, {seen}",
                      logins >= seen)
            texts[instance.name] = b"\n".join(blobs)
            verify = subprocess.run([str(self.args.sshpod), *args], capture_output=True, text=True, timeout=600,
                                    env=h.child_env())
            self.book(f"{instance.name}: sshpod audit verify", f"exit {verify.returncode}"
                      + (f" {verify.stdout[-300:]!r}{verify.stderr[-300:]!r}" if verify.returncode else ""),
                      verify.returncode == 0)
        self.book("recordings", total, True)
        # A token the client saw but the recording lacks: lost, unless its instance was killed
        # -9 during the cycle or just after it, before its recorder had written what the
        # client had already seen (the recorder runs beside the session, not in its way).
        lost, in_flight, full = [], [], []
        found = {name: set(TOKEN_RE.findall(blob)) for name, blob in texts.items()}
        by_name = {i.name: i for i in self.instances}
        for token, (name, scenario) in self.ledger.tokens.items():
            if token.encode() in found.get(name, set()):
                continue
            start, end = self.ledger.spans.get(token, (0.0, float("inf")))
            killed = [t for t in by_name[name].kills if start <= t <= end + IN_FLIGHT]
            where = f"{token} ({scenario} on {name}"
            disk = by_name[name].disk
            if killed:
                in_flight.append(f"{where}, killed {killed[0] - end:+.1f} s after the client's end)")
            elif disk and disk.was_full(start, end + IN_FLIGHT) and token in self.ledger.unfinished:
                full.append(where + ")")
            else:
                lost.append(where + ")")
        self.book("logged-in connections whose recording lacks their token", f"{len(lost)} of {len(self.ledger.tokens)}"
                  + (f": {', '.join(lost[:10])}" if lost else ""), not lost)
        self.book(f"... of which the last events were in flight at a kill -9 (within {IN_FLIGHT:g} s)",
                  f"{len(in_flight)}" + (f": {', '.join(in_flight[:10])}" if in_flight else ""), True)
        if any(i.disk for i in self.instances):
            # A recording that fails ends its session (audit.required), and a session's outcome
            # waits for its record's write: a client that saw success has its token recorded,
            # and only sessions ended without success may lack theirs.
            self.book(f"... of which the session was ended without success while the spool's disk was full",
                      f"{len(full)}" + (f": {', '.join(full[:10])}" if full else ""), True)

    # the report ---------------------------------------------------------------------------

    def report(self) -> bool:
        led = self.ledger
        print()
        length = f"soak {self.args.soak} at {self.args.rate:g}/s" if self.args.soak else f"{self.args.cycles} cycles"
        print(f"chaos run: backend {self.backend}, seed {self.args.seed}, {length}, "
              f"{self.args.clients} clients, {len(self.instances)} instances, "
              f"faults: {'none' if self.args.soak else ', '.join(self.fault_kinds()) or 'none'}")
        outcomes = sorted({o for _, o in led.outcomes})
        print()
        print("| scenario | " + " | ".join(outcomes) + " |")
        print("|---|" + "---:|" * len(outcomes))
        for name in SCENARIOS:
            print(f"| {name} | " + " | ".join(str(led.outcomes.get((name, o), 0)) for o in outcomes) + " |")
        print()
        print("| fault | injected |")
        print("|---|---:|")
        for kind, count in sorted(led.faults.items()):
            print(f"| {kind} | {count} |")
        print()
        print("| message clients saw | count |")
        print("|---|---:|")
        for message, count in led.messages.most_common():
            print(f"| `{message}` | {count} |")
        print()
        print("| the books | figure | balanced |")
        print("|---|---|---|")
        books = list(self.books)
        books.append(("undocumented messages", f"{len(led.unknown)}", not led.unknown))
        books.append(("unexplained outcomes", f"{len(led.unexplained)}", not led.unexplained))
        for what, figure, ok in books:
            print(f"| {what} | {figure} | {'yes' if ok else 'NO'} |")
        for line in sorted(set(led.unknown))[:30]:
            print(f"undocumented: {line}")
        for line in led.unexplained[:30]:
            print(f"unexplained: {line}")
        balanced = all(ok for _, _, ok in books)
        print()
        print("the books balance" if balanced else f"the books do NOT balance (work directory {self.work})")
        return balanced

    def teardown(self, keep: bool) -> None:
        FROZEN.resume_all()
        for relay in self.relays:
            relay.close()
        for instance in self.instances:
            if instance.gateway and instance.gateway.proc.poll() is None:
                instance.stop()
        for instance in self.instances:
            if instance.disk:
                instance.disk.unmount(keep=instance.dir / "spool-kept" if keep else None)
        if self.store:
            self.store.stop()
        if self.kube:
            self.kube.stop()
        if self.backend == "docker":
            left = h.docker("ps", "-aq", "--filter", f"label={LABEL}={self.run_id}", check=False).stdout.decode().split()
            if left:
                h.docker("rm", "-f", *left, check=False)
        if not keep:
            shutil.rmtree(self.work, ignore_errors=True)


def default_binary(name: str) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("release", "debug"):
        if (target / profile / name).is_file():
            return target / profile / name
    return target / "debug" / name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4, help="scenarios running at a time")
    parser.add_argument("--instances", type=int, default=3, help="sshpod processes sharing the engine")
    parser.add_argument("--backend", choices=("docker", "kube"), default="docker")
    parser.add_argument("--fault-every", type=int, default=5, help="mean cycles between faults")
    parser.add_argument("--no-s3", action="store_true", help="every instance records to files")
    parser.add_argument("--sshpod", type=Path, default=default_binary("sshpod"))
    parser.add_argument("--kube-sim", type=Path, default=default_binary("kube-sim"))
    parser.add_argument("--faults", help=f"comma-separated faults to inject, of: {', '.join(FAULTS)} "
                        "(default: every one that fits the backend)")
    parser.add_argument("--soak", metavar="DURATION", help="soak mode: a steady mix for DURATION (90s, 30m, 1h), "
                        "no faults; replaces --cycles")
    parser.add_argument("--rate", type=float, default=0.5, help="soak: sessions started per second")
    parser.add_argument("--interval", default="5m", help="soak: the table's row length")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "soak",
                        help="soak: where the table, samples and plot are written")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (kept anyway on failure)")
    args = parser.parse_args()
    if args.soak:
        import soak as soak_mode
        try:
            duration, interval = soak_mode.parse_duration(args.soak), soak_mode.parse_duration(args.interval)
        except ValueError as exc:
            parser.error(str(exc))
        if args.rate <= 0 or duration <= 0 or interval <= 0:
            parser.error("--soak, --rate and --interval must be positive")
        if args.faults:
            parser.error("the soak runs without faults: drop --faults")
    for binary in [args.sshpod] + ([args.kube_sim] if args.backend == "kube" else []):
        if not binary.is_file():
            parser.error(f"{binary} not found (build it or name it)")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    _keep_disconnect_reasons()
    chaos = Chaos(args)
    balanced = False
    try:
        chaos.setup()
        for instance in chaos.instances:
            chaos.warm_up(instance)
        if args.soak:
            soak = soak_mode.Soak(chaos, duration, args.rate, interval, args.out, say)
            soak.run()
        else:
            chaos.run_cycles()
        for instance in chaos.instances:  # restarted instances: their level after a login
            if instance.baseline is None:
                chaos.warm_up(instance)
        chaos.balance()
        balanced = chaos.report()
    finally:
        if not balanced:
            for instance in chaos.instances:
                (chaos.work / f"{instance.name}.log").write_text(instance.log_text())
        chaos.teardown(keep=args.keep or not balanced)
    return 0 if balanced else 1


if __name__ == "__main__":
    sys.exit(main())
