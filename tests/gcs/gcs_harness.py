"""A GCS emulator and a fake OAuth token endpoint on 127.0.0.1, and service-account keys made on the spot.

Service-account credentials get their access token by POSTing a signed JWT to the key's
``token_uri``: here that is :class:`TokenServer`, which answers every account with a token
except :data:`REFUSED_EMAIL`, refused as Google refuses a deleted key (``invalid_grant``).
The emulator (``gcp-storage-emulator``) takes any token, and serves V4 signed URLs without
checking their signature or expiry.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The account whose token requests the fake endpoint refuses.
REFUSED_EMAIL = "refused@offload-test.iam.gserviceaccount.com"
GOOD_EMAIL = "offload@offload-test.iam.gserviceaccount.com"
PROJECT = "offload-test"


def offline_environment() -> None:
    """Keep google-auth to what a test gives it: no Application Default Credentials, no
    metadata server. Call it before google-auth is imported (it reads NO_GCE_CHECK once)."""
    gcloud = tempfile.mkdtemp(prefix="offload-gcs-gcloud-")
    os.environ.update(
        CLOUDSDK_CONFIG=gcloud,  # no `gcloud auth application-default login` credentials
        NO_GCE_CHECK="true",  # google-auth does not look for a metadata server...
        GCE_METADATA_HOST="127.0.0.1:1",  # ...and would find none on 127.0.0.1 if it did
        GCE_METADATA_IP="127.0.0.1:1",
    )
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "API_ENDPOINT_OVERRIDE"):
        os.environ.pop(name, None)


def loopback_only(monkeypatch: Any) -> None:
    """Every HTTP request of a test stays on 127.0.0.1.

    A request to anywhere else goes to a proxy that is not there (so it is not even resolved),
    and google-auth's Regional Access Boundary lookup (after each token, it asks
    iamcredentials.googleapis.com where the service account may be used) is switched off.
    """
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:1")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    from google.auth import credentials

    boundary = getattr(credentials, "CredentialsWithRegionalAccessBoundary", None)
    if boundary is not None and hasattr(boundary, "_is_regional_access_boundary_lookup_required"):
        monkeypatch.setattr(boundary, "_is_regional_access_boundary_lookup_required", lambda self: False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


class Emulator:
    """``python -m gcp_storage_emulator start`` on a free port of 127.0.0.1, in memory."""

    def __init__(self, deadline: float = 30.0) -> None:
        self.deadline = deadline
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log = tempfile.NamedTemporaryFile(prefix="offload-gcs-emulator-", suffix=".log", delete=False)

    def start(self) -> None:
        for _ in range(3):  # the free port may be taken by someone else before the emulator binds it
            port = free_port()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "-q"],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            self.url = f"http://127.0.0.1:{port}"
            end = time.monotonic() + self.deadline
            while time.monotonic() < end and self.proc.poll() is None:
                if _answers(self.url + "/"):  # its health check answers "OK"
                    return
                time.sleep(0.05)
            self.stop()
        with open(self._log.name, errors="replace") as f:
            raise RuntimeError(f"the GCS emulator did not answer on 127.0.0.1; its log:\n{f.read()[-2000:]}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.stop()
        self._log.close()
        os.unlink(self._log.name)


class _TokenHandler(BaseHTTPRequestHandler):
    server: TokenServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        assertion = urllib.parse.parse_qs(body).get("assertion", [""])[0]
        try:
            payload = assertion.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            claims = {}
        email = claims.get("iss", "")
        self.server.requests.append(email)
        if self.path != "/token" or not email:
            self._answer(400, {"error": "invalid_request"})
        elif email == REFUSED_EMAIL:
            self._answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        else:
            self._answer(200, {"access_token": f"fake-token-for-{email}", "expires_in": 3600, "token_type": "Bearer"})

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class TokenServer(ThreadingHTTPServer):
    """Answers ``POST /token`` as Google's OAuth endpoint does for a service account's JWT."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.requests: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}/token"
        self._thread = threading.Thread(target=self.serve_forever, name="fake-oauth", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


def new_private_key() -> str:
    """A fresh RSA key in PEM (PKCS#8), as in a service-account key file; never written to the repository."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def service_account_info(email: str, private_key: str, token_uri: str) -> dict[str, str]:
    """A service-account key file's content, as ``gcloud iam service-accounts keys create`` writes it."""
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": private_key,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }


def secret_of(info: dict[str, str]) -> str:
    """A distinctive piece of the private key: it must appear in no message."""
    body = "".join(line for line in info["private_key"].splitlines() if "-----" not in line)
    return body[100:140]
