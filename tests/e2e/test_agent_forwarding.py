"""Agent forwarding (`ssh -A`) on Docker and kube-sim with OpenSSH, asyncssh and paramiko and a test ssh-agent: `ssh-add
-l` inside the container or pod lists the client's key, only sessions that asked get `SSH_AUTH_SOCK`, and the
security mode and `no-agent-forwarding` refuse it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess

import asyncssh
import paramiko
import paramiko.agent
import pytest

import harness as h
from test_kubernetes import kube, ks  # noqa: F401  (fixtures)
from test_remote_forwarding import start  # noqa: F401  (fixture)

ENABLED = {"security": {"forwarding": {"agentForwardingMode": "enable"}}}
SHOW = "echo sock=${SSH_AUTH_SOCK:-none}; ssh-add -l"


@pytest.fixture
def agent(scn):
    """A running ssh-agent holding alice's key; its socket's path."""
    sock = scn.sock_dir / "agent.sock"
    proc = scn.track(subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    h.wait_until(sock.exists, 10, "the test's ssh-agent listens")
    added = subprocess.run(["ssh-add", str(scn.keys["alice"])], env={"SSH_AUTH_SOCK": str(sock)},
                           capture_output=True, timeout=30)
    assert added.returncode == 0, added
    assert proc.poll() is None
    return str(sock)


def fingerprint(scn) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(scn.keys["alice"].with_suffix(".pub"))],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def test_ssh_add_inside_lists_the_clients_key_only_in_sessions_that_asked(start, scn, agent):
    gw = start(ENABLED)
    env = {"SSH_AUTH_SOCK": agent}
    # The master forwards the agent for the sessions whose own client asks for it.
    client = scn.client(gw)
    opts = h.control_options(scn.control_path(client))
    started = client.ssh("true", opts=[*opts, "-A"], env=env)
    assert started.returncode == 0, started
    forwarded = client.ssh(SHOW, opts=[*opts, "-A"], env=env)
    assert forwarded.returncode == 0, forwarded
    assert fingerprint(scn) in forwarded.stdout, forwarded
    assert re.search(r"sock=/\S+/agent\.sock", forwarded.stdout), forwarded
    again = client.ssh(SHOW, opts=[*opts, "-A"], env=env)
    assert fingerprint(scn) in again.stdout, "a second session shares the socket"

    plain = client.ssh(SHOW, opts=[*opts, "-o", "ForwardAgent=no"], env=env)
    assert "sock=none" in plain.stdout, plain
    gw.wait_for_log(r"agent connection passed to the client", 10)


def test_agent_forwarding_is_refused_by_the_policy_and_by_the_key(scn, agent):
    gw = scn.start()
    refused = scn.client(gw).ssh(SHOW, opts=["-A"], env={"SSH_AUTH_SOCK": agent})
    assert "sock=none" in refused.stdout, refused
    gw.wait_for_log(r"rule=\"?security\.forwarding\.agentForwardingMode", 10)

    pub = scn.keys["alice"].with_suffix(".pub").read_text().strip()
    (scn.tmp / "authorized_keys" / "alice").write_text(f"no-agent-forwarding {pub}\n")
    gw2 = scn.start(ENABLED)
    refused = scn.client(gw2).ssh(SHOW, opts=["-A"], env={"SSH_AUTH_SOCK": agent})
    assert "sock=none" in refused.stdout, refused
    gw2.wait_for_log(r"rule=\"?no-agent-forwarding", 10)


def test_the_agent_socket_belongs_to_the_logins_own_user(start, scn, agent):
    gw = start(h.deep_merge(ENABLED, {"identity": {"enable": True}}))
    script = 'id -un; stat -c "%U %a" "$(dirname "$SSH_AUTH_SOCK")"; ssh-add -l'
    result = scn.client(gw).ssh(script, opts=["-A"], env={"SSH_AUTH_SOCK": agent})
    assert result.returncode == 0, result
    user, directory, *keys = result.stdout.splitlines()
    assert user == "alice", result
    assert directory == "alice 700", "a directory only the user can enter"
    assert any(fingerprint(scn) in line for line in keys), result


def test_asyncssh_and_paramiko_forward_their_agent(start, scn, agent):
    gw = start(ENABLED)
    key = fingerprint(scn)

    async def with_asyncssh() -> str:
        async with asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                                    known_hosts=None, agent_path=agent, agent_forwarding=True, config=None,
                                    preferred_auth="publickey") as conn:
            result = await conn.run(SHOW, check=False)
            return str(result.stdout)

    shown = asyncio.run(asyncio.wait_for(with_asyncssh(), 120))
    assert key in shown and re.search(r"sock=/\S+/agent\.sock", shown), shown

    # paramiko reaches the agent SSH_AUTH_SOCK names when its handler is made.
    saved = os.environ.get("SSH_AUTH_SOCK")
    os.environ["SSH_AUTH_SOCK"] = agent
    transport = paramiko.Transport(("127.0.0.1", gw.port))
    try:
        transport.connect(username="alice", pkey=paramiko.Ed25519Key.from_private_key_file(str(scn.keys["alice"])))
        session = transport.open_session()
        forwarding = paramiko.agent.AgentRequestHandler(session)
        session.exec_command(SHOW)
        output = b""
        while True:
            chunk = session.recv(4096)
            if not chunk:
                break
            output += chunk
        assert session.recv_exit_status() == 0, output
        assert key.encode() in output and b"sock=/" in output, output
        forwarding.close()
    finally:
        transport.close()
        if saved is None:
            os.environ.pop("SSH_AUTH_SOCK", None)
        else:
            os.environ["SSH_AUTH_SOCK"] = saved
