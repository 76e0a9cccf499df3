"""Who may use the server: the API token, loopback-only binding, and the Host header guard.

The rules, in one place:

* The server binds ``127.0.0.1`` by default. Binding any other address needs a token (``--token`` or the
  ``LOOKALIKE_TOKEN`` environment variable); :func:`check_bind` refuses to start otherwise.
* When a token is set, every ``/v1`` call must carry it as ``Authorization: Bearer <token>``. The check is a
  constant-time comparison (:func:`hmac.compare_digest`). Image ``GET`` endpoints also accept the token from the
  ``lookalike_token`` cookie, because an ``<img src>`` cannot send a header; the page sets that cookie with
  ``SameSite=Strict``, so another site cannot make a browser send it.
* Without a token the server only answers requests whose ``Host`` header names a loopback address
  (``localhost``, ``127.0.0.1``, ``[::1]``): a web page on another site cannot reach it through DNS
  rebinding.
* The web page and the API description (``/``, ``/static``, ``/docs``, ``/openapi.json``) hold no data and
  need no token.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lookalike.errors import InvalidArgument
from lookalike.server.errors import Unauthorized

#: Environment variable holding the API token when ``--token`` is not given.
TOKEN_ENV = "LOOKALIKE_TOKEN"
#: Cookie the web page sets so that ``<img>`` tags can load thumbnails from a token-protected server.
TOKEN_COOKIE = "lookalike_token"
#: Host names (without port) accepted when the server runs without a token.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

_bearer = HTTPBearer(auto_error=False, description="The server's API token (--token or LOOKALIKE_TOKEN).")


def resolve_token(token: str | None) -> str | None:
    """The token to require: ``token`` if given, else ``$LOOKALIKE_TOKEN``; ``None`` (no check) when empty."""
    value = token if token is not None else os.environ.get(TOKEN_ENV)
    value = value.strip() if value else None
    return value or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen on a non-loopback address without a token."""
    if not is_loopback(host) and not token:
        raise InvalidArgument(
            f"refusing to listen on {host!r} without an API token: anyone who can reach it could read the photos",
            hint=f"pass --token SECRET or set {TOKEN_ENV}, or keep the default --host 127.0.0.1",
        )


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time comparison, so the response time says nothing about how much of a guess was right."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class TokenCheck:
    """The FastAPI dependency guarding every ``/v1`` route (a no-op when the server has no token)."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> None:
        if self.token is None:
            return
        given = credentials.credentials if credentials is not None else None
        if given is None and request.method == "GET" and request.url.path.endswith(("/thumbnail", "/image")):
            given = request.cookies.get(TOKEN_COOKIE)
        if given is None:
            raise Unauthorized("this server needs an API token", hint="send the header 'Authorization: Bearer <token>'")
        if not tokens_equal(given, self.token):
            raise Unauthorized("wrong API token", hint="check the token the server was started with")


def host_allowed(host_header: str | None) -> bool:
    """Whether a ``Host`` header names a loopback host (any port)."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8000
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return is_loopback(name)
