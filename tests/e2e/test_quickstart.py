"""The README's quick start: `scripts/run.sh` with the binary under test (SSHPOD_BIN) and a demo
directory of the test's own, logged into with the command it prints."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading

import harness as h

RUN = h.REPO_ROOT / "scripts" / "run.sh"


def test_the_quick_start_runs_a_server_you_log_in_to_as_yourself(tmp_path):
    port = h.free_port()
    demo = tmp_path / "demo"
    env = {**os.environ, "SSHPOD_BIN": str(h.sshpod_bin()), "SSHPOD_PORT": str(port),
           "SSHPOD_DEMO_DIR": str(demo)}
    server = subprocess.Popen([str(RUN)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                              cwd=h.REPO_ROOT, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(
        line.decode("utf-8", "replace").rstrip("\n") for line in iter(server.stdout.readline, b"")), daemon=True)
    reader.start()
    try:
        key_login = h.wait_until(
            lambda: next((m for line in list(lines) if (m := re.search(r"key login: (ssh .*)$", line))), None),
            120, "the login command the quick start prints").group(1)
        h.wait_until(lambda: any("listening on" in line for line in list(lines)), 120, "sshpod listening")
        # The printed command, run from the repository as a reader would, without host key prompts.
        argv = shlex.split(key_login)
        argv[1:1] = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "LogLevel=ERROR"]
        result = subprocess.run([*argv, "whoami; pwd; echo $SHELL; grep -E 'CapEff|NoNewPrivs' /proc/self/status"],
                                capture_output=True, text=True, cwd=h.REPO_ROOT, timeout=h.COMMAND_TIMEOUT)
        assert result.returncode == 0, (result, "\n".join(lines))
        user, home, shell, *status = result.stdout.split()
        assert (user, home) == ("demo", "/home/demo"), result.stdout
        assert shell.endswith("sh"), result.stdout
        # Your own user, without capabilities and without a way to gain them.
        assert status == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1"], result.stdout
        password = next(line for line in lines if "password:" in line)
        assert re.search(r"\(password: \S{16}\)", password), password
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(60) == 0, "\n".join(lines)
    reader.join(10)
