#!/usr/bin/env python3
"""An example authentication and configuration server for sshpod (and ContainerSSH).

Start from this file to connect sshpod to your own user database. It needs only Python 3.9+
and its standard library:

    python3 server.py --listen 127.0.0.1:8080 --users users.json

and in sshpod's configuration:

    auth:
      password:
        method: webhook
        webhook: {url: "http://127.0.0.1:8080"}
      publicKey:
        method: webhook
        webhook: {url: "http://127.0.0.1:8080"}
      keyboardInteractive:            # sshpod extension: password, then a one-time code
        method: webhook
        webhook: {url: "http://127.0.0.1:8080"}
      authz:
        method: webhook
        webhook: {url: "http://127.0.0.1:8080"}
    configserver:
      url: "http://127.0.0.1:8080/config"

Endpoints (all POST, JSON in and out, answer with HTTP 200):

    /password              {"username", "passwordBase64", ...} -> {"success": bool, ...}
    /pubkey                {"username", "publicKey", "certificate"?, ...} -> {"success": bool, ...}
    /keyboard-interactive  {"username", "round", "state", "answers"} -> questions or a decision
    /authz                 {"username", "authenticatedUsername", ...} -> {"success": bool}
    /config                {"username", "authenticatedUsername", ...} -> {"config": {...}, ...}

Every request also carries "connectionId", "remoteAddress", "clientVersion", and the
"metadata", "environment" and "files" gathered so far (sensitive entries are left out).

users.json maps a user name to:

    password      the password (a real server stores a hash; compare with hmac.compare_digest)
    keys          authorized public keys, "ssh-ed25519 AAAA..." (no comment)
    otp           a fixed one-time code for the keyboard-interactive example (use TOTP instead)
    environment   variables for the user's processes
    files         files to create in the container: path -> text
    config        a partial sshpod/ContainerSSH configuration merged over the file's
                  (for example another image or memory limit for this user)

Never log passwords, and mark secrets you return as "sensitive": sshpod then never logs them and
never sends them to the next webhook.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USERS: dict[str, dict[str, Any]] = {}


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def granted(name: str) -> dict[str, Any]:
    """A successful answer: the name the user is known by, and what to give the container."""
    user = USERS[name]
    answer: dict[str, Any] = {"success": True, "authenticatedUsername": name}
    if user.get("environment"):
        answer["environment"] = {k: {"value": v, "sensitive": False} for k, v in user["environment"].items()}
    if user.get("files"):
        answer["files"] = {
            path: {"value": base64.b64encode(text.encode()).decode(), "sensitive": True}
            for path, text in user["files"].items()
        }
    return answer


def password(request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("username", "")
    given = base64.b64decode(request.get("passwordBase64", "")).decode("utf-8", "replace")
    user = USERS.get(name)
    if user and "password" in user and same(user["password"], given):
        return granted(name)
    return {"success": False}


def pubkey(request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("username", "")
    key = " ".join(request.get("publicKey", "").split()[:2])
    user = USERS.get(name)
    if user and key in user.get("keys", []):
        return granted(name)
    return {"success": False}


def keyboard_interactive(request: dict[str, Any]) -> dict[str, Any]:
    """Round 1: ask the password. Round 2: check it, ask the code. Round 3: check the code.
    `state` comes back with the answers; a real server should sign or encrypt it."""
    name = request.get("username", "")
    user = USERS.get(name) or {}
    answers = request.get("answers") or []
    step = request.get("round")
    if step == 1:
        return {"questions": [{"prompt": "Password: ", "echo": False}], "state": "password"}
    if step == 2 and request.get("state") == "password":
        if len(answers) == 1 and "password" in user and same(user["password"], answers[0]):
            return {"questions": [{"prompt": "One-time code: ", "echo": True}], "state": "otp"}
    if step == 3 and request.get("state") == "otp":
        if len(answers) == 1 and "otp" in user and same(user["otp"], answers[0]):
            return granted(name)
    return {"success": False}


def authz(request: dict[str, Any]) -> dict[str, Any]:
    return {"success": request.get("authenticatedUsername", request.get("username")) in USERS}


def config(request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("authenticatedUsername") or request.get("username", "")
    return {"config": USERS.get(name, {}).get("config", {})}


ROUTES = {
    "/password": password,
    "/pubkey": pubkey,
    "/keyboard-interactive": keyboard_interactive,
    "/authz": authz,
    "/config": config,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        route = ROUTES.get(self.path.rstrip("/") or "/")
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        except ValueError:
            request = None
        if route is None or not isinstance(request, dict):
            self.answer(404 if route is None else 400, {})
            return
        self.answer(200, route(request))

    def answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, fmt: str, *args: Any) -> None:
        # One line per request, without bodies (they hold passwords).
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (port 0: any free port)")
    parser.add_argument("--users", default="users.json", help="the users file")
    args = parser.parse_args()
    with open(args.users, encoding="utf-8") as f:
        USERS.update(json.load(f))
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    print(f"listening on http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
