"""A kube-sim restarted with `--credentials DIR` on the same address is the same cluster to a
kubeconfig written before the restart (its CA key and tokens kept), and an empty one: its
objects live in memory only (the chaos run's kube-sim-restart fault relies on both)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import kubesim
from conftest import _stop_and_check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl(kubeconfig, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=90)


def test_a_restarted_kube_sim_answers_an_old_kubeconfig_and_has_lost_its_objects(tmp_path, name):
    listen = f"127.0.0.1:{free_port()}"
    credentials = str(tmp_path / "credentials")
    first = kubesim.KubeSim(tmp_path, "--credentials", credentials, listen=listen)
    try:
        old = tmp_path / "old-kubeconfig"
        shutil.copy(first.kubeconfig, old)
        made = kubectl(old, "create", "configmap", name, "--from-literal=k=v")
        assert made.returncode == 0, made.stderr
    finally:
        _stop_and_check(first)
    second = kubesim.KubeSim(tmp_path, "--credentials", credentials, listen=listen)
    try:
        # The old kubeconfig's CA and token still work against the new process...
        listed = kubectl(old, "get", "configmaps", "-o", "name")
        assert listed.returncode == 0, listed.stderr
        # ...which has none of the old one's objects.
        assert f"configmap/{name}" not in listed.stdout
        assert second.instance != first.instance
    finally:
        _stop_and_check(second)


def test_without_credentials_a_restart_is_another_cluster(tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    first = kubesim.KubeSim(tmp_path, listen=listen)
    old = tmp_path / "old-kubeconfig"
    shutil.copy(first.kubeconfig, old)
    _stop_and_check(first)
    second = kubesim.KubeSim(tmp_path, listen=listen)
    try:
        refused = kubectl(old, "get", "configmaps")
        assert refused.returncode != 0
    finally:
        _stop_and_check(second)
