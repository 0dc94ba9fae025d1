"""Authentication with the built-in methods: authorized keys and htpasswd. Failures are refused
the same way whatever the reason, and start no container (the scenario checks that)."""

from __future__ import annotations

import harness as h


def assert_denied(result: h.Result) -> None:
    assert result.returncode == 255, result
    assert "Permission denied" in result.stderr, result


def normalised(result: h.Result, user: str) -> str:
    return result.stderr.replace(user, "USER")


def test_key_login(scn):
    gw = scn.start()
    result = scn.client(gw).ssh("echo logged-in")
    assert (result.returncode, result.stdout) == (0, "logged-in\n"), result


def test_password_login(scn):
    gw = scn.start()
    result = scn.password_client(gw).ssh("echo logged-in")
    assert (result.returncode, result.stdout) == (0, "logged-in\n"), result


def test_wrong_key_is_denied(scn):
    gw = scn.start()
    assert_denied(scn.client(gw, key=scn.keys["stranger"]).ssh("true"))


def test_wrong_password_is_denied(scn):
    gw = scn.start()
    assert_denied(scn.password_client(gw, password="not the password").ssh("true"))


def test_unknown_user_is_denied(scn):
    gw = scn.start()
    assert_denied(scn.client(gw, user="mallory").ssh("true"))
    assert_denied(scn.password_client(gw, user="mallory").ssh("true"))


def test_unknown_user_looks_like_a_wrong_credential(scn):
    gw = scn.start()
    wrong_key = scn.client(gw, key=scn.keys["stranger"]).ssh("true")
    unknown_key = scn.client(gw, user="mallory", key=scn.keys["stranger"]).ssh("true")
    assert normalised(wrong_key, "alice") == normalised(unknown_key, "mallory"), (wrong_key, unknown_key)

    wrong_password = scn.password_client(gw, password="not the password").ssh("true")
    unknown_password = scn.password_client(gw, user="mallory", password="not the password").ssh("true")
    assert normalised(wrong_password, "alice") == normalised(unknown_password, "mallory"), (
        wrong_password, unknown_password)
