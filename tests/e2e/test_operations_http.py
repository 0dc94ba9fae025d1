"""The HTTP endpoints an operator watches: metrics (scraped and parsed as Prometheus does),
health and probes, `sshpod healthcheck`, HTTPS with client certificates, and GeoIP countries
from a MaxMind database the test writes itself."""

from __future__ import annotations

import http.client
import re
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

import harness as h
from test_kubernetes import kube, ks  # noqa: F401 (fixtures)
from test_webhooks import hooks  # noqa: F401 (a fixture)
from test_webhooks import make_pki, password_only

HTTP_RE = re.compile(r'HTTP server listening.*sections="?([a-z,]+)"? url="?(https?://[^"\s]+)')


def http_urls(gw: h.Gateway) -> dict[str, str]:
    """Section (`metrics`, `health`) to the base URL of the server that serves it."""
    gw.wait_for_log(HTTP_RE, 30, "HTTP server listening")
    urls = {}
    for match in HTTP_RE.finditer(gw.log):
        for section in match.group(1).split(","):
            urls[section] = match.group(2)
    return urls


def get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str, str]:
    """Status, content type and body of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


class Scrape:
    """One scrape, parsed by Prometheus's own parser: sample values by name and labels."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))


def scrape(url: str, context: ssl.SSLContext | None = None) -> Scrape:
    status, content_type, body = get(url, context)
    assert status == 200, body
    assert content_type.startswith("application/openmetrics-text; version=1.0.0"), content_type
    assert body.endswith("# EOF\n"), body[-200:]
    # The strict OpenMetrics parser accepts it too.
    list(parse_openmetrics(body))
    return Scrape(body)


def wait_value(url: str, name: str, expected: float, what: str, **labels: str) -> Scrape:
    return h.wait_until(lambda: (s := scrape(url)).value(name, **labels) == expected and s, 30, what)


def test_metrics_count_connections_logins_refusals_and_sessions(scn):
    port = h.free_port()
    gw = scn.start({
        "ssh": {"maxStartups": 1},
        # On one address, metrics and health are one server.
        "metrics": {"enable": True, "listen": f"127.0.0.1:{port}"},
        "health": {"enable": True, "listen": f"127.0.0.1:{port}"},
    })
    urls = http_urls(gw)
    assert urls == {"metrics": f"http://127.0.0.1:{port}/", "health": f"http://127.0.0.1:{port}/"}, gw.log
    metrics = urls["metrics"] + "metrics"
    assert get(urls["health"] + "readyz")[0] == 200

    # One silent connection holds the only unauthenticated slot: the next is refused.
    with h.connect_raw(gw.port) as idle:
        assert h.read_banner(idle).startswith(b"SSH-2.0-")
        with h.connect_raw(gw.port) as refused:
            received = h.read_until_eof(refused, 30)
        assert received == b"" or received.startswith(b"SSH-2.0-"), received
        wait_value(metrics, "sshpod_refused_total", 1, "the refusal counted",
                   stage="connection", reason="max_startups")
        assert scrape(metrics).value("containerssh_ssh_current_connections", country="XX") == 1
    wait_value(metrics, "containerssh_ssh_current_connections", 0, "the silent connection gone", country="XX")

    client = scn.client(gw)
    result = client.ssh("cat", input=b"ping\n")
    assert (result.returncode, result.stdout) == (0, "ping\n"), result

    # A session that stays open shows in the user gauge, and leaves it at 0.
    session = scn.track(client.popen("echo started; exec cat", stdin=subprocess.PIPE))
    assert h.read_line(session.stdout, 60) == b"started\n"
    during = wait_value(metrics, "sshpod_user_sessions", 1, "alice's session counted", user="alice")
    assert during.value("containerssh_ssh_current_connections", country="XX") == 1
    session.stdin.close()
    assert session.wait(60) == 0

    wrong = scn.password_client(gw, password="not her password").ssh("true")
    assert wrong.returncode == 255, wrong

    after = wait_value(metrics, "containerssh_ssh_current_connections", 0, "every connection closed",
                       country="XX")
    after = wait_value(metrics, "sshpod_user_sessions", 0, "alice's gauge back at 0", user="alice")
    expected = {
        # The silent one, two logins, the wrong password; not the refused one.
        ("containerssh_ssh_connections_total", (("country", "XX"),)): 4,
        ("containerssh_ssh_successful_handshakes_total", (("country", "XX"),)): 2,
        ("containerssh_ssh_failed_handshakes_total", (("country", "XX"),)): 2,
        ("containerssh_auth_success_total", (("authtype", "pubkey"), ("retry", "0"), ("country", "XX"))): 2,
        ("containerssh_auth_failures_total", (("authtype", "password"), ("retry", "0"), ("country", "XX"))): 1,
        ("sshpod_refused_total", (("stage", "login"), ("reason", "not_accepted"))): 1,
        ("sshpod_refused_total", (("stage", "connection"), ("reason", "max_startups"))): 1,
        # Both logins printed something: the latency from accept to the first byte.
        ("sshpod_login_latency_seconds_count", ()): 2,
        ("sshpod_container_start_seconds_count", (("backend", "docker"), ("image", h.GUEST_IMAGE))): 2,
        # Two containers made and removed, two processes started.
        ("containerssh_backend_requests_total", (("backend", "docker"),)): 6,
    }
    found = {key: after.value(key[0], **dict(key[1])) for key in expected}
    assert found == expected, after.text
    assert after.value("containerssh_backend_errors_total", backend="docker") is None, after.text
    # `ping\n` in, `ping\n` and `started\n` out (and the login's latency is under a minute).
    assert after.value("sshpod_received_bytes_total", channel="session") == 5, after.text
    assert after.value("sshpod_sent_bytes_total", channel="session") == 13, after.text
    assert after.value("sshpod_login_latency_seconds_bucket", le="+Inf") == 2, after.text
    # The engine requests behind them, by kind: the start-up sweep lists containers, each
    # login's container is created, started and removed.
    engine = {dict(labels)["kind"]: value for (name, labels), value in after.samples.items()
              if name == "sshpod_backend_api_requests_total" and dict(labels).get("backend") == "docker"}
    assert engine.get("create containers") == 2, engine
    assert engine.get("start containers") == 2, engine
    assert engine.get("remove containers") == 2, engine
    assert engine.get("list containers", 0) >= 1, engine


def test_kubernetes_api_requests_are_counted_by_kind(kube, scn):
    """One login on Kubernetes (kube-sim): its pod created, watched until it runs, one exec,
    deleted; and the container start by backend."""
    port = h.free_port()
    gw = kube({"metrics": {"enable": True, "listen": f"127.0.0.1:{port}"}})
    result = scn.client(gw).ssh("echo hi")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result
    metrics = f"http://127.0.0.1:{port}/metrics"
    after = wait_value(metrics, "containerssh_ssh_current_connections", 0, "the connection closed",
                       country="XX")
    kinds = {dict(labels)["kind"]: value for (name, labels), value in after.samples.items()
             if name == "sshpod_backend_api_requests_total" and value}
    assert kinds.get("create pods") == 1, after.text
    assert kinds.get("exec pods") == 1, after.text
    assert kinds.get("delete pods") == 1, after.text
    assert set(kinds) <= {"create pods", "watch pods", "get pods", "list pods", "exec pods",
                          "delete pods"}, kinds
    assert after.value("sshpod_container_start_seconds_count", backend="kubernetes",
                       image="sshpod-guest:latest") == 1, after.text


def test_webhook_requests_and_their_retries_are_counted(scn, hooks):
    """Two server errors, then an answer: three requests, two soft failures (ContainerSSH's
    auth server metrics), one login."""
    server = hooks({"alice": {"password": "webhook pass 1"}})
    server.actions["/password"] = ["status:500", "status:503"]
    port = h.free_port()
    gw = scn.start(h.deep_merge(password_only(server.url),
                                {"metrics": {"enable": True, "listen": f"127.0.0.1:{port}"}}))
    result = scn.password_client(gw, password="webhook pass 1").ssh("true")
    assert result.returncode == 0, result
    after = wait_value(f"http://127.0.0.1:{port}/metrics", "containerssh_ssh_current_connections", 0,
                       "the connection closed", country="XX")
    requests = "containerssh_auth_server_requests_total"
    failures = "containerssh_auth_server_failures_total"
    assert after.value(requests, authtype="password", retry="0") == 1, after.text
    assert after.value(requests, authtype="password", retry="1") == 2, after.text
    assert after.value(failures, type="soft", authtype="password", retry="0", reason="unavailable") == 1
    assert after.value(failures, type="soft", authtype="password", retry="1", reason="unavailable") == 1
    assert after.value("containerssh_auth_success_total", authtype="password", retry="0", country="XX") == 1


def test_probes_and_healthcheck_follow_the_server(scn):
    port = h.free_port()
    gw = scn.start({
        "health": {"enable": True, "listen": f"127.0.0.1:{port}",
                   "client": {"url": f"http://127.0.0.1:{port}/"}},
    })
    base = f"http://127.0.0.1:{port}/"
    assert get(base + "healthz")[0::2] == (200, "ok\n")
    assert get(base + "readyz")[0::2] == (200, "ready\n")
    # ContainerSSH's answer, on any path.
    assert get(base + "any/path")[0::2] == (200, "ok")

    for args in (["healthcheck"], ["--healthcheck"]):
        done = h.run_sshpod(["--config", str(gw.config_path), *args])
        assert done.returncode == 0, done
        assert done.stdout.startswith("sshpod: ready"), done

    # SIGTERM with a user logged in: not ready at once, while the server still answers (it stops
    # last, once the user's container is gone).
    session = scn.track(scn.client(gw).popen("echo started; exec cat", stdin=subprocess.PIPE))
    assert h.read_line(session.stdout, 60) == b"started\n"
    gw.signal(signal.SIGTERM)
    answers = []

    def draining_seen() -> bool:
        try:
            answers.append(get(base + "readyz")[0::2])
        except OSError as error:
            answers.append(repr(error))
        return answers[-1] == (503, "not ready: draining: the server is shutting down\n")

    h.wait_until(draining_seen, 30, "readiness false during the drain", interval=0.01)
    assert all(a in ((200, "ready\n"), answers[-1]) for a in answers), answers
    assert gw.wait_exit(60) == 0
    done = h.run_sshpod(["--config", str(gw.config_path), "healthcheck"])
    assert done.returncode == 1, done
    assert done.stdout.startswith("sshpod: not ready: "), done
    assert len(done.stdout.splitlines()) == 1, done


def test_https_with_client_certificates(scn):
    pki = make_pki(scn.tmp)
    port = h.free_port()
    tls = {"cert": str(pki["server.pem"]), "key": str(pki["server.key"]), "clientcacert": str(pki["ca.pem"])}
    client_block = {"url": f"https://127.0.0.1:{port}/", "cacert": str(pki["ca.pem"])}
    gw = scn.start({
        "metrics": {"enable": True, "listen": f"127.0.0.1:{port}", **tls},
        "health": {"enable": True, "listen": f"127.0.0.1:{port}", **tls,
                   "client": {**client_block, "cert": str(pki["client.pem"]), "key": str(pki["client.key"])}},
    })
    assert http_urls(gw)["metrics"] == f"https://127.0.0.1:{port}/"

    trusted = ssl.create_default_context(cafile=str(pki["ca.pem"]))
    with_certificate = ssl.create_default_context(cafile=str(pki["ca.pem"]))
    with_certificate.load_cert_chain(str(pki["client.pem"]), str(pki["client.key"]))
    metrics = scrape(f"https://127.0.0.1:{port}/metrics", with_certificate)
    assert metrics.value("containerssh_ssh_current_connections", country="XX") is None, metrics.text
    assert get(f"https://127.0.0.1:{port}/readyz", with_certificate)[0] == 200

    # Without a client certificate the handshake fails: no request is read.
    try:
        answer = get(f"https://127.0.0.1:{port}/metrics", trusted)
    except (ssl.SSLError, urllib.error.URLError, ConnectionError) as error:
        answer = error
    assert not isinstance(answer, tuple), answer
    # Plain HTTP gets nothing either.
    try:
        plain = get(f"http://127.0.0.1:{port}/metrics")
    except (OSError, http.client.HTTPException) as error:
        plain = error
    assert not isinstance(plain, tuple), plain

    done = h.run_sshpod(["--config", str(gw.config_path), "healthcheck"])
    assert (done.returncode, done.stdout.startswith("sshpod: ready")) == (0, True), done
    without = scn.write_config(h.deep_merge(scn.config({"health": {"client": client_block}}), {}), "nocert.yaml")
    done = h.run_sshpod(["--config", str(without), "healthcheck"])
    assert done.returncode == 1, done
    assert done.stdout.startswith("sshpod: not ready: "), done


def write_country_database(path: Path, networks: dict[str, str]) -> None:
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-Country")
    for network, country in networks.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": country}})
    writer.to_db_file(str(path))


def test_geoip_maxmind_labels_connections_with_their_country(scn):
    database = scn.tmp / "country.mmdb"
    write_country_database(database, {"127.0.0.0/8": "NZ"})
    port = h.free_port()
    gw = scn.start({
        "metrics": {"enable": True, "listen": f"127.0.0.1:{port}"},
        "geoip": {"provider": "maxmind", "maxmind-geoip2-file": str(database)},
    })
    metrics = f"http://127.0.0.1:{port}/metrics"
    result = scn.client(gw).ssh("true")
    assert result.returncode == 0, result
    after = wait_value(metrics, "containerssh_ssh_current_connections", 0, "the connection closed", country="NZ")
    assert after.value("containerssh_ssh_connections_total", country="NZ") == 1, after.text
    assert after.value("containerssh_auth_success_total", authtype="pubkey", retry="0", country="NZ") == 1
    assert after.value("containerssh_ssh_connections_total", country="XX") is None, after.text

    # A file that is not a database is refused where it is configured.
    database.write_bytes(b"not a database")
    config = scn.write_config(scn.config({"geoip": {"provider": "maxmind",
                                                     "maxmind-geoip2-file": str(database)}}), "bad.yaml")
    done = h.run_sshpod(["--config", str(config), "check-config"])
    assert done.returncode == 2, done
    assert re.search(r"bad\.yaml:\d+:\d+: key `geoip\.maxmind-geoip2-file`: .* is not a MaxMind DB file",
                     done.stderr), done.stderr
