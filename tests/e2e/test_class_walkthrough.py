"""The README's class on Docker: `examples/class/docker.sh` run as a teacher would, with the binary
under test. The script checks each step itself (certificate login as the student's own user, the
first-login step, a home that outlives logouts and a restart, a revoked certificate ending the
running session, `homes rm`); this test runs it and checks that it left nothing behind."""

from __future__ import annotations

import os
import secrets
import subprocess

import harness as h

WALKTHROUGH = h.REPO_ROOT / "examples" / "class" / "docker.sh"


def test_the_class_walkthrough_on_docker_holds_at_every_step(tmp_path):
    student = f"student-{secrets.token_hex(3)}"
    env = {**os.environ, "SSHPOD_BIN": str(h.sshpod_bin()), "SSHPOD_PORT": str(h.free_port()),
           "SSHPOD_CLASS_DIR": str(tmp_path / "class"), "SSHPOD_CLASS_STUDENT": student}
    result = subprocess.run([str(WALKTHROUGH)], capture_output=True, text=True, env=env, cwd=h.REPO_ROOT,
                            timeout=600)
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert f"{student}\n/home/{student}\n/home/{student}\n{student}-class\nWelcome to the class, {student}\n" in out
    assert "sshpod: your certificate has been revoked" in out
    assert "Done: the walk-through held at every step" in out
    # The server's user container went at shutdown and the home with `homes rm`.
    assert h.docker("ps", "-aq", "--filter", f"label=sshpod.user={student}").stdout.strip() == b""
    assert h.docker("volume", "ls", "-q", "--filter", f"label=sshpod.user={student}").stdout.strip() == b""
