"""The Docker engine over TCP with TLS (`docker.connection.cacert/cert/key`), as with a daemon
started with `--tlsverify`: sshpod trusts only the configured CA and presents its client
certificate. The engine's TLS side is socat with OpenSSL, verifying client certificates, in
front of the real engine's socket."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import harness as h

DOCKER_SOCKET = "/var/run/docker.sock"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            cwd=directory)


def make_cert(directory: Path, name: str, ca: str, extensions: str) -> None:
    """A certificate `name.pem` (key `name-key.pem`) signed by `ca`."""
    (directory / f"{name}.ext").write_text(extensions + "\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine's CA with a server and a client certificate, and an unrelated CA with a
    client certificate of its own."""
    directory = tmp_path_factory.mktemp("docker-tls")
    make_ca(directory, "engine-ca")
    make_cert(directory, "engine", "engine-ca",
              "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
    make_cert(directory, "client", "engine-ca", "extendedKeyUsage=clientAuth")
    make_ca(directory, "other-ca")
    make_cert(directory, "stranger", "other-ca", "extendedKeyUsage=clientAuth")
    return directory


@pytest.fixture(scope="module")
def tls_engine(pki: Path):
    """`tcp://127.0.0.1:PORT`: the real engine behind a TLS listener that demands a client
    certificate from `engine-ca`."""
    port = h.free_port()
    # -t: after one direction ends (stdin EOF), keep relaying the other for a while.
    proc = subprocess.Popen(
        ["socat", "-t", "30",
         f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=1,"
         f"cert={pki / 'engine.pem'},key={pki / 'engine-key.pem'},cafile={pki / 'engine-ca.pem'}",
         f"UNIX-CONNECT:{DOCKER_SOCKET}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def listening() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"socat exited: {proc.stderr.read().decode(errors='replace')}")
        return h.port_open(port)

    h.wait_until(listening, 30, "the TLS front of the Docker engine to listen")
    yield f"tcp://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def tls_connection(engine: str, pki: Path, *, client: str = "client", ca: str = "engine-ca") -> dict:
    return {"docker": {"connection": {
        "host": engine,
        "cacert": str(pki / f"{ca}.pem"),
        # Inline PEM and file paths are both accepted.
        "cert": (pki / f"{client}.pem").read_text(),
        "key": str(pki / f"{client}-key.pem"),
    }}}


def test_sessions_run_on_an_engine_reached_over_tls(scn, pki, tls_engine):
    gw = scn.start(tls_connection(tls_engine, pki))
    client = scn.client(gw)
    # stdin through to EOF, output back, exit status: the hijacked exec stream over TLS.
    result = client.ssh("cat; echo done >&2; exit 3", input=b"through TLS\n")
    assert result.returncode == 3, result
    assert result.stdout == "through TLS\n"
    assert "done" in result.stderr
    # A terminal session over the same kind of stream.
    tty = client.ssh("tty", opts=["-tt"])
    assert tty.returncode == 0, tty
    assert tty.stdout.startswith("/dev/pts/"), tty
    h.wait_no_containers(scn.run_id)


@pytest.mark.parametrize("case", ["client certificate from another CA", "engine certificate not trusted"])
def test_engine_tls_that_does_not_verify_stops_start_up(scn, pki, tls_engine, case):
    if case == "client certificate from another CA":
        overrides = tls_connection(tls_engine, pki, client="stranger")
    else:
        overrides = tls_connection(tls_engine, pki, ca="other-ca")
    gw = scn.start(overrides, wait=False)
    assert gw.wait_exit(60) != 0
    assert f"connecting to the Docker engine at {tls_engine}" in gw.log, gw.log


def test_unreadable_tls_settings_are_named_at_start_up(scn, pki, tls_engine):
    overrides = tls_connection(tls_engine, pki)
    overrides["docker"]["connection"]["cacert"] = str(pki / "missing-ca.pem")
    gw = scn.start(overrides, wait=False)
    assert gw.wait_exit(60) != 0
    assert "docker.connection.cacert: cannot read" in gw.log, gw.log
