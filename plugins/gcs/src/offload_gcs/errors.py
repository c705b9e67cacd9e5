"""Google's exceptions, said in one line a user can act on, without a secret.

google-cloud-storage raises ``google.api_core`` exceptions for HTTP errors (their text
is ``"404 GET http://...: message"``), ``google.auth`` ones when a token cannot be had, and
``requests`` ones when the service cannot be reached; a ``RetryError`` wraps the last of
them when its retries ran out. None of them carries the private key, but a token
endpoint's answer is still reduced to its error code, and every text to one short line.
"""

from __future__ import annotations

import re

#: What to do when no credentials were found (Digdag's key first).
NO_CREDENTIALS = "no credentials found: set gcs.credentials.json.path or configure Application Default Credentials"
_METHOD_URL = re.compile(r"^\d{3} (GET|POST|PUT|PATCH|DELETE|HEAD) \S+: ")
_MAX = 240


def one_line(text: str, limit: int = _MAX) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _api_message(exc: BaseException) -> str:
    """The service's message of a ``google.api_core`` error, without its method and URL."""
    message = str(getattr(exc, "message", "") or "")
    message = _METHOD_URL.sub("", f"{getattr(exc, 'code', '')} {message}").strip()
    if message.startswith(("('Request failed", "unknown error")):  # the emulator's and resumable-media's texts
        return ""
    return one_line(message)


def _refresh_code(exc: BaseException) -> str:
    """The OAuth error code of a refused token request (``invalid_grant``), never its body."""
    details = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(details, dict) and isinstance(details.get("error"), str):
        return one_line(details["error"], 60)
    first = str(exc.args[0]) if exc.args else ""
    code = first.split(":", 1)[0].strip()
    return code if re.fullmatch(r"[a-z_]{3,40}", code) else type(exc).__name__


def is_not_found(exc: BaseException) -> bool:
    from google.api_core import exceptions as api

    return isinstance(exc, api.NotFound)


def is_refused(exc: BaseException) -> bool:
    """Whether ``exc`` says the credentials were refused (by the token endpoint or by GCS)."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    cause = exc.cause if isinstance(exc, api.RetryError) and exc.cause is not None else exc
    return isinstance(cause, auth.RefreshError | api.Unauthorized)


def reason(exc: BaseException, endpoint: str) -> str:
    """Why a call failed, in a few words: ``credentials refused (invalid_grant)``."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    if isinstance(exc, api.RetryError):
        if exc.cause is not None and exc.cause is not exc:
            return f"{reason(exc.cause, endpoint)} (gave up retrying)"
        return "gave up retrying"
    if isinstance(exc, auth.DefaultCredentialsError):
        text = str(exc)
        if "were not found" in text or "Could not automatically determine" in text:
            return NO_CREDENTIALS
        return f"Application Default Credentials cannot be used: {one_line(text)}"
    if isinstance(exc, auth.RefreshError):
        return f"credentials refused by the token endpoint ({_refresh_code(exc)})"
    if isinstance(exc, auth.TransportError):
        return "cannot reach the OAuth token endpoint to get an access token"
    if isinstance(exc, api.Unauthorized):
        return "credentials refused (401 Unauthorized)"
    if isinstance(exc, api.Forbidden):
        message = _api_message(exc)
        return f"permission denied ({message})" if message else "permission denied (403)"
    if isinstance(exc, api.NotFound):
        return "not found"
    if isinstance(exc, api.GoogleAPICallError):
        return _api_message(exc) or f"HTTP {exc.code}"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot reach {endpoint}"
    if isinstance(exc, requests.Timeout):
        return f"{endpoint} did not answer in time"
    if isinstance(exc, auth.GoogleAuthError):
        return f"authentication failed ({type(exc).__name__})"
    return one_line(f"{type(exc).__name__}: {exc}")


def google_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that calls to GCS raise, for ``except`` clauses."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    try:
        from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
    except ImportError:  # google-cloud-storage 2.x
        from google.resumable_media import DataCorruption, InvalidResponse
    return (api.GoogleAPICallError, api.RetryError, auth.GoogleAuthError, requests.RequestException, InvalidResponse, DataCorruption)
