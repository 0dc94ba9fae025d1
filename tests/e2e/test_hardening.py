"""Adversarial clients: what one user sends must not hurt another user, and a forced command
must stay the command that runs.

Each test is a hostile client bounded in count and time, on loopback only.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import threading

import asyncssh
import pexpect
import pytest

import harness as h


def run_async(coro, timeout: float = 200):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def asyncssh_connect(scn, gw, **kw):
    return asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                            known_hosts=None, agent_path=None, config=None, preferred_auth="publickey", **kw)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class PeakSampler:
    """Samples sshpod's open descriptors until stopped; keeps the highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = open_fds(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, open_fds(self.pid))

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(300)
def test_a_flood_of_resizes_and_signals_costs_others_nothing(scn):
    """20,000 window changes and 3,000 signals from one channel: sshpod makes a handful of engine
    calls instead of one each (it used to hold 13,000 descriptors and fail other logins), another
    user logs in meanwhile, and the terminal ends up at the last size asked for."""
    gw = scn.start()
    baseline = open_fds(gw.proc.pid)
    other = scn.client(gw)

    async def scenario():
        async with asyncssh_connect(scn, gw) as conn:
            proc = await conn.create_process(
                "trap '' USR1; echo ready; while read -r line; do stty size; done",
                term_type="xterm", term_size=(80, 24))
            assert await asyncio.wait_for(proc.stdout.readline(), 60) == "ready\r\n"
            with PeakSampler(gw.proc.pid) as sampler:
                for i in range(20_000):
                    proc.change_terminal_size(40 + i % 200, 10 + i % 50)
                    if i < 3_000:
                        proc.send_signal("USR1")
                proc.change_terminal_size(132, 43)
                # Another user's login while the flood is being worked off.
                loop = asyncio.get_running_loop()
                login = await loop.run_in_executor(None, lambda: other.ssh("echo other user", timeout=60))
                assert login.returncode == 0 and login.stdout == "other user\n", login

                async def final_size():
                    while True:
                        proc.stdin.write("size?\n")
                        line = await asyncio.wait_for(proc.stdout.readline(), 30)
                        if line.strip() == "43 132":
                            return
                        await asyncio.sleep(0.2)

                await asyncio.wait_for(final_size(), 60)
            proc.stdin.write_eof()
            proc.close()
            return sampler.peak

    peak = run_async(scenario())
    print(f"descriptors: {baseline} before, {peak} at the peak of the flood")
    assert peak < baseline + 100, f"sshpod went from {baseline} to {peak} open descriptors"
    # The signals did reach the process without killing it (it ignores USR1) and nothing else.
    assert "signal not delivered" not in gw.log


@pytest.mark.timeout(120)
def test_a_forced_command_cannot_be_escaped_through_the_environment(scn):
    """Even where an operator accepts every variable, a forced command is not given the ones
    that make a shell run the client's code first (BASH_ENV, ENV, SHELLOPTS with PS4, LD_*)."""
    key = scn.keys["alice"].with_suffix(".pub").read_text().strip()
    (scn.tmp / "authorized_keys" / "alice").write_text(f'command="bash -c \'echo forced\'" {key}\n')
    gw = scn.start({"ssh": {"acceptEnv": ["*"]}})
    client = scn.client(gw)
    hostile = ["-o", "SetEnv=BASH_ENV='$(echo PWNED-BASH_ENV >&2)' SHELLOPTS=xtrace PS4='$(echo PWNED-PS4 >&2)'",
               "-o", "SetEnv=LD_PRELOAD=/nonexistent.so LANG=C.UTF-8"]
    result = client.ssh("anything", opts=hostile)
    assert result.returncode == 0 and result.stdout == "forced\n", result
    assert "PWNED" not in result.stderr and "nonexistent" not in result.stderr, result


@pytest.mark.timeout(120)
def test_only_accepted_variables_reach_a_session(scn):
    gw = scn.start()
    client = scn.client(gw)
    result = client.ssh('echo "[$LANG] [$LC_TIME] [$BASH_ENV] [$FOO]"',
                        opts=["-o", "SetEnv=LANG=C.UTF-8 LC_TIME=C BASH_ENV=/tmp/x FOO=bar"])
    assert result.returncode == 0 and result.stdout == "[C.UTF-8] [C] [] []\n", result

    # At most 128 variables, however many a client sends.
    gw2 = scn.start({"ssh": {"acceptEnv": ["V*"]}})

    async def scenario():
        async with asyncssh_connect(scn, gw2) as conn:
            env = {f"V{i}": "x" * 10 for i in range(1000)}
            return await conn.run("env | grep -c '^V'", env=env)

    counted = run_async(scenario())
    assert counted.stdout.strip() == "128", counted


@pytest.mark.timeout(180)
def test_sessions_per_connection_are_capped(scn):
    """ssh.maxSessions (default 10) sessions at once on one connection; the next is refused
    and the connection carries on."""
    gw = scn.start({"ssh": {"maxSessions": 3}})

    async def scenario():
        async with asyncssh_connect(scn, gw) as conn:
            # Commands that have ended do not count, however many ran before.
            for i in range(7):
                done = await conn.run(f"echo {i}")
                assert done.stdout == f"{i}\n", done
            held = [await conn.create_process("echo up; exec sleep 60") for _ in range(3)]
            for proc in held:
                assert await asyncio.wait_for(proc.stdout.readline(), 60) == "up\n"
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_process("echo too many")
            held[0].close()
            await held[0].wait_closed()
            return await conn.run("echo again")

    result = run_async(scenario())
    assert result.stdout == "again\n", result
    assert "session refused: ssh.maxSessions" in gw.log


@pytest.mark.timeout(120)
def test_a_mistyped_password_can_be_typed_again(scn):
    """As with OpenSSH: a wrong password is asked for again (three prompts by default)."""
    gw = scn.start()
    password = scn.password_client(gw).password
    child = pexpect.spawn("ssh", [*h.COMMON_SSH_OPTIONS, "-o", "PreferredAuthentications=password",
                                  "-o", "PubkeyAuthentication=no", "-p", str(gw.port), "alice@127.0.0.1",
                                  "echo logged in"], timeout=60, encoding="utf-8",
                          env={k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"})
    answers = ["wrong one", "wrong two", password]
    prompts = 0
    while child.expect(["assword: ", pexpect.EOF]) == 0:
        child.sendline(answers[min(prompts, 2)])
        prompts += 1
    output = child.before
    child.close()
    assert prompts == 3 and "logged in" in output, (prompts, output)


def guess_passwords(gw, source: str, connections: int) -> tuple[int, int]:
    """Connections from `source` that each try wrong passwords until refused; returns how many
    connections got to try and how many were turned away before they could."""

    async def one() -> bool:
        try:
            conn = await asyncio.wait_for(asyncssh.connect(
                "127.0.0.1", gw.port, local_addr=(source, 0), username="alice", password="wrong",
                known_hosts=None, agent_path=None, config=None, client_keys=None,
                preferred_auth="password"), 30)
        except asyncssh.PermissionDenied:
            return True
        except (OSError, asyncssh.Error, asyncio.TimeoutError):
            return False
        conn.close()
        raise AssertionError("a wrong password was accepted")

    async def all_of_them():
        tried = 0
        for _ in range(connections):
            tried += await one()
        return tried

    tried = run_async(all_of_them())
    return tried, connections - tried


@pytest.mark.timeout(180)
def test_password_guessers_are_slowed_to_a_few_tries_and_others_log_in(scn):
    """20 connections of wrong passwords from one address: after three (15 s of penalty, the
    minimum; one or two more may be accepted while the third is still closing) the address is
    refused at once, while a user from another address logs in."""
    gw = scn.start()
    tried, turned_away = guess_passwords(gw, "127.0.0.2", 20)
    print(f"guesser: {tried} connections got to try, {turned_away} turned away")
    assert 3 <= tried <= 5 and tried + turned_away == 20, (tried, turned_away)
    assert "ssh.perSourcePenalties" in gw.log
    result = scn.password_client(gw).ssh("echo ok", timeout=60)
    assert (result.returncode, result.stdout) == (0, "ok\n"), result


@pytest.mark.timeout(180)
def test_exempt_networks_are_never_penalised(scn):
    gw = scn.start({"ssh": {"perSourcePenaltyExemptList": ["127.0.0.0/24"]}})
    tried, turned_away = guess_passwords(gw, "127.0.0.2", 6)
    assert (tried, turned_away) == (6, 0)


@pytest.mark.timeout(120)
def test_ssh_audit_finds_no_failures_in_the_defaults(scn):
    """ssh-audit's policy check of the default algorithms: nothing it calls a failure (the NIST
    curves and MAC-then-encrypt were), the post-quantum hybrid offered first, strict key
    exchange on. Its remaining warnings are printed for the record."""
    gw = scn.start()
    audit = subprocess.run([str(h.REPO_ROOT / ".venv" / "bin" / "ssh-audit"), "-j", "-p", str(gw.port),
                            "127.0.0.1"], capture_output=True, text=True, timeout=90)
    report = json.loads(audit.stdout)
    failures, warnings = [], []
    for section in ("kex", "key", "enc", "mac"):
        for entry in report.get(section, []):
            notes = entry.get("notes", {})
            failures += [f"{section} {entry['algorithm']}: {n}" for n in notes.get("fail", [])]
            warnings += [f"{section} {entry['algorithm']}: {n}" for n in notes.get("warn", [])]
    print("ssh-audit warnings:", *warnings, sep="\n  ")
    assert not failures, failures
    assert not report.get("cves"), report.get("cves")
    kex = [entry["algorithm"] for entry in report["kex"]]
    assert kex[0] == "mlkem768x25519-sha256", kex
    assert "kex-strict-s-v00@openssh.com" in kex, kex
    assert not any(name.startswith("ecdh-sha2-nistp") for name in kex), kex
    assert all(entry["algorithm"].endswith("-etm@openssh.com") for entry in report["mac"]), report["mac"]


@pytest.fixture
def isolated_network(scn) -> str:
    """A network set up as scripts/run.sh sets up `sshpod`: inter-container traffic off."""
    name = f"sshpod-test-{scn.run_id}"
    h.docker("network", "create", "--driver", "bridge", "-o", "com.docker.network.bridge.enable_icc=false", name)
    # Removed among the scenario's leak checks, once its clients have ended and its containers
    # are gone: a network with containers on it cannot be removed, and this fixture's own
    # teardown would run before the scenario's.
    scn.leak_checks.append(lambda: h.wait_until(
        lambda: h.docker("network", "rm", name, check=False).returncode == 0, 60,
        f"the network {name} to be removed"))
    return name


def hardened(network: str) -> dict:
    """The isolation settings of examples/config.yaml (scripts/run.sh adds `identity`:
    tests/e2e/test_quickstart.py)."""
    return {"docker": {"execution": {"container": {"user": "guest"},
                                     "host": {"networkmode": network, "capdrop": ["ALL"]}}}}


@pytest.mark.timeout(240)
def test_with_the_shipped_isolation_one_users_container_cannot_reach_anothers(scn, isolated_network):
    gw = scn.start(hardened(isolated_network))
    client = scn.client(gw)
    control = scn.tmp / "cm"
    server = client.popen("echo listening; exec busybox nc -l -p 8080", opts=h.control_options(control))
    scn.procs.append(server)
    h.wait_until(lambda: server.stdout.readline().strip() == b"listening", 60, "the listener")
    [first] = h.wait_containers(scn.run_id, 1)
    target = json.loads(h.docker("inspect", first).stdout)[0]["NetworkSettings"]["Networks"][isolated_network]["IPAddress"]

    # Another connection (another container) of the same user, as another user would be.
    other = client.ssh(f"busybox nc -w 3 {target} 8080 </dev/null && echo reached || echo refused",
                       timeout=60)
    assert other.stdout.strip() == "refused", other
    # Inside, the user is the guest with no capabilities at all (no NET_RAW, no raw sockets).
    who = client.ssh("id -un; grep CapBnd /proc/self/status", timeout=60)
    assert who.stdout.split() == ["guest", "CapBnd:", "0000000000000000"], who
    # The listener is still up: the check did not pass by finding nothing there.
    loopback = client.ssh("busybox nc -w 3 127.0.0.1 8080 </dev/null; echo rc=$?", opts=h.control_options(control),
                          timeout=60)
    assert loopback.stdout.strip().endswith("rc=0"), loopback
    h.close_control_master(client, control)


def test_the_shipped_network_policy_isolates_guest_pods_from_each_other():
    """No cluster runs here, so the Kubernetes manifest is read: every pod in the guests'
    namespace takes no ingress at all (so no pod reaches another), and egress is DNS only."""
    import yaml  # from the kubernetes client's dependencies

    documents = list(yaml.safe_load_all((h.REPO_ROOT / "deploy/kubernetes/networkpolicy.yaml").read_text()))
    [policy] = [d for d in documents if d and d.get("kind") == "NetworkPolicy"]
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "sshpod-guests"
    assert spec["podSelector"] == {}, "every guest pod"
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert spec.get("ingress", []) == [], "no ingress from anywhere, other guest pods included"
    ports = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule.get("ports", [])}
    assert ports == {("UDP", 53), ("TCP", 53)}, ports


@pytest.mark.timeout(240)
def test_forwarding_and_file_transfer_work_with_the_shipped_isolation(scn, isolated_network):
    """The non-root user without capabilities still gets `ssh -L` (the helper sshpod copies
    in must be runnable by it) and sftp."""
    from test_transfer import serve_through_forward

    gw = scn.start(h.deep_merge(hardened(isolated_network), h.FORWARDING))
    client = scn.client(gw)
    fetch = serve_through_forward(scn, client, "isolated")
    assert b"isolated" in h.wait_until(fetch, 60, "an HTTP answer through the forwarded port")
    listing = client.run_args(client.sftp_args(), input=b"pwd\nls /\n", timeout=60)
    assert listing.returncode == 0 and "home" in listing.stdout, listing
