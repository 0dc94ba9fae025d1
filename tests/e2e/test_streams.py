"""Process streams on a local engine: the stdin and stdout of commands without a terminal go
through FIFOs in sshpod's stream directory rather than through the engine, and everything a
command relies on still holds (EOF, exit codes, stderr apart, a non-root user); an engine that
does not see the directory gets the streams through itself, and nothing is left on either side.
"""

from __future__ import annotations

import subprocess

import harness as h

MiB = 1024 * 1024

FD_TARGETS = "readlink /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2"


def test_commands_read_and_write_through_fifos_that_are_gone_once_open(scn):
    gw = scn.start()
    client = scn.client(gw)
    result = client.ssh(f"{FD_TARGETS}; echo to-stderr >&2; exit 7")
    assert result.returncode == 7, result
    stdin, stdout, stderr = result.stdout.splitlines()
    assert stdin.startswith("/.sshpod/io/") and stdin.endswith(".in (deleted)"), result
    assert stdout.startswith("/.sshpod/io/") and stdout.endswith(".out (deleted)"), result
    assert stderr.startswith("pipe:"), "stderr still comes through the engine"
    assert result.stderr.strip() == "to-stderr", result

    echoed = client.ssh("cat; echo after-eof", input=b"line one\nline two\n")
    assert echoed.returncode == 0, echoed
    assert echoed.stdout == "line one\nline two\nafter-eof\n", "stdin ends when the client's input does"


def test_output_ends_with_the_command_not_with_its_stderr_nor_with_a_child_it_leaves(scn):
    """The engine carries only stderr: a command that closes it still runs and writes; one that
    leaves a child holding its output ends with itself."""
    client = scn.client(scn.start())
    result = client.ssh("exec 2>&-; sleep 2; echo late")
    assert (result.returncode, result.stdout) == (0, "late\n"), result
    result = client.ssh("sleep 300 & echo started", timeout=60)
    assert (result.returncode, result.stdout) == (0, "started\n"), result


def test_a_stopped_server_leaves_no_stream_directory(scn):
    gw = scn.start()
    client = scn.client(gw)
    sleeper = scn.track(client.popen("echo started; exec sleep 600", stdout=subprocess.PIPE))
    assert h.read_line(sleeper.stdout, h.CONTAINER_TIMEOUT) == b"started\n"
    assert len(h.connection_stream_dirs(scn.stream_dir)) == 1
    assert gw.stop() == 0
    assert list(scn.stream_dir.iterdir()) == [], "an instance removes its directory when it stops"


def test_opening_dev_stdin_works_before_and_after_the_input_ends(scn):
    gw = scn.start()
    client = scn.client(gw)
    early = client.ssh("cat /dev/stdin", input=b"piped\n")
    assert (early.returncode, early.stdout) == (0, "piped\n"), early
    # The first `cat` returns once the input has ended; only then is /dev/stdin opened by
    # name, which on a FIFO without a writer would wait for ever.
    for opts, data in (["-n"], None), ([], b"read first\n"):
        late = client.ssh("cat >/dev/null; cat /dev/stdin; echo done", opts=opts, input=data, timeout=60)
        assert (late.returncode, late.stdout) == (0, "done\n"), late


def test_input_for_a_command_that_stopped_reading_is_dropped(scn):
    gw = scn.start()
    client = scn.client(gw)
    big = scn.tmp / "big.bin"
    with open(big, "wb") as f:
        f.truncate(64 * MiB)
    result = client.ssh("head -c 5 >/dev/null; echo read-five", stdin_path=big, timeout=120)
    assert result.returncode == 0, result
    assert result.stdout == "read-five\n", result


def test_a_non_root_container_user_gets_its_streams(scn):
    gw = scn.start({"docker": {"execution": {"container": {"user": "1000"}}}})
    client = scn.client(gw)
    result = client.ssh("id -u; cat", input=b"from the client\n")
    assert result.returncode == 0, result
    assert result.stdout == "1000\nfrom the client\n", result
    batch = scn.tmp / "batch"
    src = scn.tmp / "src.txt"
    src.write_text("sftp as a non-root user\n")
    batch.write_text(f"put {src} /tmp/up.txt\nget /tmp/up.txt {scn.tmp / 'back.txt'}\n")
    sftp = client.run_args(client.sftp_args(opts=["-b", str(batch)]), timeout=120)
    assert sftp.returncode == 0, sftp
    assert (scn.tmp / "back.txt").read_text() == src.read_text()


def test_an_engine_that_does_not_see_the_directory_carries_the_streams_itself(scn):
    # sshpod gets a private mount namespace with an empty tmpfs over its stream directory, as
    # if it ran in a container of its own: the engine sees a different (here: no) directory.
    scn.stream_dir.mkdir()
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               f'mount -t tmpfs -o mode=0755 sshpod-streams "{scn.stream_dir}" && exec "$@"', "sh"]
    gw = scn.start(wrapper=wrapper)
    client = scn.client(gw)
    for attempt in range(2):
        result = client.ssh("readlink /proc/self/fd/0; cat; exit 3", input=b"data\n")
        assert result.returncode == 3, (attempt, result)
        lines = result.stdout.splitlines()
        assert lines[0].startswith("pipe:"), (attempt, result)
        assert lines[1:] == ["data"], (attempt, result)
    gw.wait_for_log("the Docker engine does not see this directory", 10)
    assert not any(scn.stream_dir.iterdir()), "the engine made nothing on its side"

    def sshpods_own_view() -> list[str]:
        find = subprocess.run(["nsenter", "-t", str(gw.proc.pid), "-m", "find", str(scn.stream_dir),
                               "-mindepth", "2"], capture_output=True, text=True, timeout=30, check=True)
        return find.stdout.split()

    h.wait_until(lambda: sshpods_own_view() == [], h.CLEANUP_TIMEOUT,
                 "sshpod's connection directories (in its own namespace) removed after logout")
