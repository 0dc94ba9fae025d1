"""ContainerSSH's `security` policy with OpenSSH clients (asyncssh for signals and concurrent
sessions): every rule refuses what it should, tells the client why, and names itself in the
log; what it allows still works. The policy also comes from a config server's answer."""

from __future__ import annotations

import asyncio
import shutil
import sys

import asyncssh
import pytest

import harness as h

sys.path.insert(0, str(h.REPO_ROOT / "tests" / "webhook_server"))
from containerssh_webhooks import WebhookServer  # noqa: E402

REFUSED = "request refused by the security policy"


def security(**policy) -> dict:
    return {"security": policy}


def refused_in_log(gw: h.Gateway, rule: str) -> None:
    gw.wait_for_log(rf"{REFUSED}.*rule=\"?{rule}", 10)


def run_async(coro, timeout: float = 100):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def asyncssh_connect(scn, gw):
    return asyncssh.connect("127.0.0.1", gw.port, username="alice", client_keys=[str(scn.keys["alice"])],
                            known_hosts=None, agent_path=None, config=None, preferred_auth="publickey")


def test_only_allowed_commands_run_and_the_client_is_told_why_others_do_not(scn):
    gw = scn.start(security(command={"mode": "filter", "allow": ["echo allowed"]}))
    client = scn.client(gw)
    ok = client.ssh("echo allowed")
    assert (ok.returncode, ok.stdout) == (0, "allowed\n"), ok
    # Exact lines only: what a shell would also run does not pass.
    refused = client.ssh("echo allowed; id")
    assert refused.returncode != 0, refused
    assert "sshpod: this command is not allowed on this server" in refused.stderr, refused
    assert "uid=" not in refused.stdout, refused
    refused_in_log(gw, "security.command.allow")


def test_a_disabled_shell_refuses_logins_but_not_commands(scn):
    gw = scn.start(security(shell={"mode": "disable"}))
    client = scn.client(gw)
    shell = client.ssh(opts=["-tt"], input=b"exit\n")
    assert "sshpod: shells are disabled on this server" in shell.stderr, shell
    refused_in_log(gw, "security.shell.mode")
    assert client.ssh("echo still").stdout == "still\n"


def test_the_default_mode_applies_to_every_feature_without_its_own(scn):
    gw = scn.start(security(defaultMode="disable", command={"mode": "enable"}))
    client = scn.client(gw)
    assert client.ssh("echo commands").stdout == "commands\n"
    terminal = client.ssh("tty", opts=["-tt"])
    assert "PTY allocation request failed" in terminal.stderr, terminal
    refused_in_log(gw, "security.tty.mode")
    sftp = client.run_args(client.sftp_args(), input=b"ls\n")
    assert sftp.returncode != 0, sftp
    assert "the subsystem `sftp` is not allowed on this server" in sftp.stderr, sftp
    refused_in_log(gw, "security.subsystem.mode")


def test_a_denied_subsystem_is_refused_and_others_are_not(scn):
    gw = scn.start(security(subsystem={"deny": ["sftp"]}))
    client = scn.client(gw)
    sftp = client.run_args(client.sftp_args(), input=b"ls\n")
    assert sftp.returncode != 0, sftp
    assert "the subsystem `sftp` is not allowed on this server" in sftp.stderr, sftp
    refused_in_log(gw, "security.subsystem.deny")
    assert client.ssh("echo exec").stdout == "exec\n"


def test_a_disabled_terminal_is_refused_and_commands_run_without_one(scn):
    gw = scn.start(security(tty={"mode": "disable"}))
    client = scn.client(gw)
    forced = client.ssh("tty", opts=["-tt"])
    assert "PTY allocation request failed" in forced.stderr, forced
    refused_in_log(gw, "security.tty.mode")
    plain = client.ssh("tty; echo ran")
    assert plain.stdout == "not a tty\nran\n", plain


def test_only_allowed_environment_variables_reach_the_command(scn):
    gw = scn.start(security(env={"mode": "filter", "allow": ["LANG"]}))
    result = scn.client(gw).ssh('echo "[$LANG] [$LC_TIME]"',
                                opts=["-o", "SetEnv=LANG=C.UTF-8 LC_TIME=C"])
    assert result.stdout == "[C.UTF-8] []\n", result
    refused_in_log(gw, "security.env.allow")


def test_denied_signals_are_dropped_and_others_delivered(scn):
    gw = scn.start(security(signal={"deny": ["SIGTERM"]}))

    async def scenario():
        async with asyncssh_connect(scn, gw) as conn:
            proc = await conn.create_process(
                "trap 'echo got TERM' TERM; trap 'echo got INT; exit 4' INT; echo ready; "
                "while :; do sleep 0.1; done")
            assert await asyncio.wait_for(proc.stdout.readline(), 60) == "ready\n"
            proc.send_signal("TERM")
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: refused_in_log(gw, "security.signal.deny"))
            proc.send_signal("INT")
            output = await asyncio.wait_for(proc.stdout.read(), 60)
            result = await asyncio.wait_for(proc.wait(), 60)
            return output, result.exit_status

    output, status = run_async(scenario())
    assert "got INT" in output and "got TERM" not in output, output
    assert status == 4


def test_port_forwarding_is_off_unless_the_policy_turns_it_on(scn):
    gw = scn.start()
    client = scn.client(gw)
    result = client.run_args(client.ssh_args(opts=["-v", "-W", "127.0.0.1:9"]))
    assert "administratively prohibited" in result.stderr, result
    gw.wait_for_log(r"forwarding refused by the security policy.*security\.forwarding\.forwardingMode", 10)


def test_a_forced_command_replaces_what_the_client_asks_and_gets_the_original(scn):
    gw = scn.start(security(forceCommand='echo "forced: $SSH_ORIGINAL_COMMAND"'))
    client = scn.client(gw)
    result = client.ssh("whoami")
    assert (result.returncode, result.stdout) == (0, "forced: whoami\n"), result
    spoofed = client.ssh("id", opts=["-o", "SetEnv=SSH_ORIGINAL_COMMAND=spoofed"])
    assert spoofed.stdout == "forced: id\n", spoofed


@pytest.mark.timeout(180)
def test_max_sessions_caps_the_sessions_open_at_once(scn):
    gw = scn.start(security(maxSessions=2))

    async def scenario():
        async with asyncssh_connect(scn, gw) as conn:
            for i in range(4):  # ended sessions do not count
                assert (await conn.run(f"echo {i}")).stdout == f"{i}\n"
            held = [await conn.create_process("echo up; exec sleep 60") for _ in range(2)]
            for proc in held:
                assert await asyncio.wait_for(proc.stdout.readline(), 60) == "up\n"
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_process("echo too many")
            held[0].close()
            await held[0].wait_closed()
            return await conn.run("echo again")

    assert run_async(scenario()).stdout == "again\n"
    gw.wait_for_log(r"session refused by the security policy.*security\.maxSessions", 10)


def test_a_config_server_sets_the_policy_per_user(scn):
    server = WebhookServer({
        "alice": {"config": {"security": {"command": {"mode": "disable"}}}},
        "bob": {"config": {}},
    })
    # bob logs in with alice's key; only the config server's answers tell them apart.
    shutil.copy(scn.tmp / "authorized_keys" / "alice", scn.tmp / "authorized_keys" / "bob")
    try:
        config = h.deep_merge(scn.config(), {"configserver": {"url": server.url + "/config"}})
        gw = scn.start(config_path=scn.write_config(config))
        alice = scn.client(gw).ssh("echo hi")
        assert "running commands is disabled on this server" in alice.stderr, alice
        refused_in_log(gw, "security.command.mode")
        bob = scn.client(gw, user="bob").ssh("echo hi")
        assert bob.stdout == "hi\n", bob
    finally:
        server.close()
