"""A ContainerSSH authentication and configuration webhook server, for tests.

Written from ContainerSSH's documentation of its webhook protocol (the "Authentication
webhook" and "Configuration server" reference pages and their OpenAPI document), not from
sshpod's code, so that the test suite checks sshpod against the protocol as documented:

- POST {base}/password  {username, remoteAddress, connectionId, clientVersion, passwordBase64, ...}
- POST {base}/pubkey    {username, remoteAddress, connectionId, clientVersion, publicKey, ...}
- POST {base}/authz     {username, authenticatedUsername, remoteAddress, connectionId, ...}
  answer: {"success": bool, "authenticatedUsername": str, "metadata": {...},
           "environment": {...}, "files": {...}}; each map entry is {"value": str, "sensitive": bool}
- POST {base}/config    the connection metadata; answer: {"config": {...AppConfig...},
           "metadata": {...}, "environment": {...}, "files": {...}}

It also speaks sshpod's keyboard-interactive extension (POST {base}/keyboard-interactive, see
sshpod's README), which ContainerSSH does not have.

The server is a real HTTP(S) server (stdlib `http.server`, one thread per request). A test sets
per-user answers and per-path misbehaviour (`slow`, `status:500`, `malformed`) and reads back
every request it received.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def entry(value: str, sensitive: bool = False) -> dict[str, Any]:
    return {"value": value, "sensitive": sensitive}


class WebhookServer:
    """Users: name -> {"password": str, "keys": [authorized_keys lines without comment],
    "otp": str, "authz": bool, "config": dict, "metadata"/"environment"/"files": maps,
    "authz_metadata": map, "config_environment"/"config_files": maps}."""

    def __init__(self, users: dict[str, dict[str, Any]] | None = None, tls: ssl.SSLContext | None = None):
        self.users = users or {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        # path -> list of actions used one per request ("slow", "status:503", "malformed",
        # "raw:<text>"); when empty, the normal answer is given.
        self.actions: dict[str, list[str]] = {}
        # Requests for these users on any path hang until `release` is set.
        self.hang_users: set[str] = set()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, b"{}")
                    return
                with server.lock:
                    server.requests.append((self.path, body))
                    queue = server.actions.get(self.path) or []
                    action = queue.pop(0) if queue else None
                if action == "slow" or body.get("username") in server.hang_users:
                    server.release.wait(120)
                    return self._send(500, b"")
                if action and action.startswith("status:"):
                    return self._send(int(action.split(":", 1)[1]), b"")
                if action == "malformed":
                    return self._send(200, b'{"success": tru')
                if action and action.startswith("raw:"):
                    return self._send(200, action[4:].encode())
                answer = server.answer(self.path, body)
                if answer is None:
                    return self._send(404, b"")
                self._send(200, json.dumps(answer).encode())

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def seen(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.requests if p == path]

    # answers -----------------------------------------------------------------------------

    def _auth(self, user: dict[str, Any] | None, name: str, ok: bool) -> dict[str, Any]:
        if not ok or user is None:
            return {"success": False}
        answer: dict[str, Any] = {"success": True, "authenticatedUsername": user.get("authenticated", name)}
        for field in ("metadata", "environment", "files"):
            if user.get(field):
                answer[field] = user[field]
        return answer

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        name = body.get("username", "")
        user = self.users.get(name)
        if path.endswith("/password"):
            given = base64.b64decode(body.get("passwordBase64", "")).decode("utf-8", "replace")
            return self._auth(user, name, user is not None and user.get("password") == given)
        if path.endswith("/pubkey"):
            key = " ".join(body.get("publicKey", "").split()[:2])
            allowed = user is not None and key in user.get("keys", [])
            if user is not None and user.get("ca_fingerprint") and body.get("certificate"):
                allowed = body["certificate"].get("caFingerprint") == user["ca_fingerprint"]
            return self._auth(user, name, allowed)
        if path.endswith("/authz"):
            if user is None or not user.get("authz", True):
                return {"success": False}
            answer = {"success": True, "authenticatedUsername": body.get("authenticatedUsername") or name}
            if user.get("authz_metadata"):
                answer["metadata"] = user["authz_metadata"]
            return answer
        if path.endswith("/config"):
            answer = {"config": (user or {}).get("config", {})}
            if user and user.get("config_environment"):
                answer["environment"] = user["config_environment"]
            if user and user.get("config_files"):
                answer["files"] = user["config_files"]
            return answer
        if path.endswith("/keyboard-interactive"):
            return self._keyboard(user, name, body)
        return None

    def _keyboard(self, user: dict[str, Any] | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Password, then a one-time code: the auth server drives the prompts."""
        round_ = body.get("round")
        answers = body.get("answers") or []
        if round_ == 1:
            return {"questions": [{"prompt": "Password: ", "echo": False}], "state": "want-password",
                    "instruction": "Log in to the lab"}
        if round_ == 2 and body.get("state") == "want-password":
            if user is None or answers != [user.get("password")]:
                return {"success": False}
            return {"questions": [{"prompt": "Verification code: ", "echo": True}], "state": "want-otp"}
        if round_ == 3 and body.get("state") == "want-otp":
            return self._auth(user, name, user is not None and answers == [user.get("otp")])
        return {"success": False}


def tls_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
