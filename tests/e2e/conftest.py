"""Fixtures of the end-to-end suite.

Every test gets a `scn` (Scenario): a temporary directory with authorized keys and an htpasswd
for the user `alice`, a unique RUNID put on every container as the label `sshpod-test=RUNID`,
and a factory for gateways. When the test ends, the scenario stops the clients it started,
checks (with the gateways still running) that no container of the run is left behind, stops
the gateways and removes whatever was left, failing the test if anything was. When a test fails,
the gateways' logs are added to its report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

import harness as h

ALICE_PASSWORD = "correct horse battery staple"

REQUIRED_TOOLS = ["docker", "ssh", "scp", "sftp", "ssh-keygen", "sshpass", "openssl", "tar", "ldd", "cmp", "unshare", "nsenter"]


@pytest.fixture(scope="session", autouse=True)
def preflight(request: pytest.FixtureRequest) -> None:
    """Fail loudly, never skip, when something the suite needs is missing."""
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (scripts/test.sh installs them)", pytrace=False)
    binary = h.sshpod_bin()
    if not binary.is_file():
        pytest.fail(f"sshpod binary not found at {binary}: run `cargo build -p sshpod` or set SSHPOD_BIN",
                    pytrace=False)
    # Tests marked `no_docker` (the recordings page) run without an engine.
    if all(item.get_closest_marker("no_docker") for item in request.session.items):
        return
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.fail(f"the Docker engine is not reachable (scripts/test.sh starts it): {info.stderr}", pytrace=False)
    image = subprocess.run(["docker", "image", "inspect", h.GUEST_IMAGE], capture_output=True, text=True)
    if image.returncode != 0:
        pytest.fail(f"image {h.GUEST_IMAGE} is missing: run images/guest/build.sh", pytrace=False)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ed25519 key pairs: `alice` (authorized) and `stranger` (authorized nowhere)."""
    directory = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("alice", "stranger"):
        path = directory / f"id_{name}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(path)],
                       check=True, stdin=subprocess.DEVNULL)
        out[name] = path
    return out


@pytest.fixture(scope="session")
def sh_only_image() -> str:
    """An image with nothing but a static busybox as /bin/sh (built once per session)."""
    tag = f"sshpod-test-sh-only:{uuid.uuid4().hex[:12]}"
    h.build_sh_only_image(tag)
    yield tag
    h.docker("rmi", "-f", tag, check=False)


SCENARIO_KEY = pytest.StashKey["Scenario"]()


class Scenario:
    def __init__(self, tmp: Path, keys: dict[str, Path], test_name: str):
        self.tmp = tmp
        self.keys = keys
        self.run_id = self._make_run_id()
        self.run_ids = [self.run_id]
        self.gateways: list[h.Gateway] = []
        self.procs: list[subprocess.Popen] = []
        self.masters: list[tuple[h.Client, Path]] = []
        self.proxies: list[h.TcpProxy] = []
        self.finalizers: list[Any] = []
        # Callables that raise h.WaitTimeout when something of the run is left behind; they
        # run after the clients ended, while the gateways still run.
        self.leak_checks: list[Any] = []
        # Unix socket paths are short: keep control sockets out of the long pytest tmp path.
        self.sock_dir = Path(tempfile.mkdtemp(prefix="sshpod-cm."))
        (tmp / "authorized_keys").mkdir()
        shutil.copy(keys["alice"].with_suffix(".pub"), tmp / "authorized_keys" / "alice")
        hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=ALICE_PASSWORD, text=True,
                                capture_output=True, check=True).stdout.strip()
        (tmp / "htpasswd").write_text(f"alice:{hashed}\n")
        self.host_key = tmp / "ssh_host_ed25519_key"
        # The FIFOs of processes without a terminal live here (one directory per connection).
        self.stream_dir = tmp / "streams"
        self.test_name = test_name

    @staticmethod
    def _make_run_id() -> str:
        return uuid.uuid4().hex[:16]

    def new_run_id(self) -> str:
        run_id = self._make_run_id()
        self.run_ids.append(run_id)
        return run_id

    # configuration ---------------------------------------------------------------------

    def config(self, overrides: dict | None = None, run_id: str | None = None) -> dict:
        base = {
            "ssh": {
                "listen": "127.0.0.1:0",
                "hostkeys": [str(self.host_key)],
                "loginGraceTime": "120s",
            },
            "log": {"level": "debug", "format": "text"},
            "auth": {
                "publicKey": {"method": "authorizedKeys",
                              "authorizedKeys": {"file": str(self.tmp / "authorized_keys" / "%u")}},
                "password": {"method": "htpasswd", "htpasswd": {"file": str(self.tmp / "htpasswd")}},
            },
            "docker": {
                "connection": {"streamDirectory": str(self.stream_dir)},
                "execution": {
                    "container": {"image": h.GUEST_IMAGE, "labels": {h.TEST_LABEL: run_id or self.run_id}},
                    "mode": "connection",
                },
            },
        }
        return h.deep_merge(base, overrides or {})

    def write_config(self, config: dict, name: str = "config.yaml") -> Path:
        path = self.tmp / name
        if name.endswith(".json"):
            path.write_text(json.dumps(config, indent=2) + "\n")
        else:
            path.write_text("# written by the sshpod end-to-end suite\n" + h.to_yaml(config) + "\n")
        return path

    def start(self, overrides: dict | None = None, *, run_id: str | None = None, name: str | None = None,
              config_path: Path | None = None, wait: bool = True, wrapper: list[str] | None = None) -> h.Gateway:
        """Start a gateway (by default from `config(overrides)`) and wait for it to listen.
        `wrapper` is a command line that runs sshpod (given as its last arguments)."""
        name = name or f"gw{len(self.gateways) + 1}"
        if config_path is None:
            config_path = self.write_config(self.config(overrides, run_id), f"{name}.yaml")
        gateway = h.Gateway(name, config_path, wrapper=wrapper)
        self.gateways.append(gateway)
        if wait:
            gateway.wait_ready()
        return gateway

    # clients ---------------------------------------------------------------------------

    def client(self, gateway: h.Gateway | int, **kw: Any) -> h.Client:
        port = gateway if isinstance(gateway, int) else gateway.port
        kw.setdefault("key", self.keys["alice"])
        return h.Client(port, **kw)

    def password_client(self, gateway: h.Gateway, password: str = ALICE_PASSWORD, **kw: Any) -> h.Client:
        return h.Client(gateway.port, key=None, password=password, **kw)

    def track(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.procs.append(proc)
        return proc

    def control_path(self, client: h.Client, name: str = "cm") -> Path:
        path = self.sock_dir / name
        self.masters.append((client, path))
        return path

    def proxy(self, target_port: int) -> h.TcpProxy:
        proxy = h.TcpProxy(target_port)
        self.proxies.append(proxy)
        return proxy

    # teardown --------------------------------------------------------------------------

    def finish(self) -> None:
        problems: list[str] = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        for client, path in self.masters:
            h.close_control_master(client, path)
        for proxy in self.proxies:
            proxy.close()
        for fn in self.finalizers:
            fn()
        # Nothing may be left behind while the gateways still run: that is the normal logout path.
        # (When every gateway has exited, nobody will remove anything any more: no need to wait.)
        alive = any(gateway.proc.poll() is None for gateway in self.gateways)
        for run_id in self.run_ids:
            try:
                h.wait_no_containers(run_id, h.CLEANUP_TIMEOUT if alive else 0)
            except h.WaitTimeout as exc:
                problems.append(f"containers left behind after the clients ended: {exc}")
        if alive and self.stream_dir.is_dir():
            try:
                h.wait_until(lambda: not h.connection_stream_dirs(self.stream_dir), h.CLEANUP_TIMEOUT,
                             f"no connection's stream directory left in {self.stream_dir}")
            except h.WaitTimeout as exc:
                problems.append(f"left behind after the clients ended: {exc}")
        if alive:
            for check in self.leak_checks:
                try:
                    check()
                except h.WaitTimeout as exc:
                    problems.append(f"left behind after the clients ended: {exc}")
        for gateway in self.gateways:
            gateway.stop()
        for run_id in self.run_ids:
            left = h.containers(run_id)
            if left:
                h.docker("rm", "-f", *left, check=False)
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def scn(request: pytest.FixtureRequest, tmp_path: Path, keys: dict[str, Path]) -> Scenario:
    scenario = Scenario(tmp_path, keys, request.node.name)
    request.node.stash[SCENARIO_KEY] = scenario
    yield scenario
    scenario.finish()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    scenario = item.stash.get(SCENARIO_KEY, None)
    if scenario is None or not report.failed or report.when == "setup":
        return
    for gateway in scenario.gateways:
        status = gateway.proc.poll()
        state = "running" if status is None else f"exited with {status}"
        report.sections.append((f"sshpod log: {gateway.name} ({state}, {report.when})", gateway.log or "(empty)"))
