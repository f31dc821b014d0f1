"""Who may drive the annotation API: invite tokens, and the addresses the page is served at.

A team's annotators each get a token (`invite`): 32 random bytes from `secrets`, carried by the URL
that `python -m omnijax.annotation invite` prints and sent by the page in an `Authorization: Bearer`
header. The store keeps only the token's SHA-256, bound to one run and one person, so the SQLite
file holds no working token; `revoke` ends it at once, also for a server already running (every
call looks the token up). The annotator of a score is always the token's.

Every request, token or not, must name in `Host` one of the addresses the server serves (a
DNS-rebinding page names its own), and a request that carries `Origin` must come from the page's own
origin, so no other site can drive the API from an annotator's browser.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import socket
from http import HTTPStatus
from urllib.parse import urlsplit

from omnijax.annotation.store import Run, Store, check_name

TOKEN_BYTES = 32
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class Refused(Exception):
    """A request the API does not answer: the HTTP status to reply with and why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = int(status)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(store: Store, run: Run, name: str) -> str:
    """A new token for person `name` on this run (registered as a person if new); only its hash is
    stored. An earlier token of the same person for the run stops working."""
    store.add_annotator(check_name(name), "person")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    store.add_token(run.id, name, token_hash(token))
    return token


def revoke(store: Store, run: Run, name: str) -> int:
    """Revokes `name`'s tokens for this run (how many); ValueError if there was none to revoke."""
    revoked = store.revoke_tokens(run.id, check_name(name))
    if not revoked:
        raise ValueError(f"{name!r} holds no working token for run {run.name}; invited: {store.invited(run.id)}")
    return revoked


def authenticate(store: Store, run: Run, authorization: str | None) -> str:
    """The annotator whose token an `Authorization: Bearer TOKEN` header carries; Refused unless the token
    exists, is not revoked and belongs to this run."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(HTTPStatus.UNAUTHORIZED, "this page needs an invite token: open the link that "
                      "`python -m omnijax.annotation invite` printed for you")
    found = store.token(token_hash(token.strip()))
    if found is None:
        raise Refused(HTTPStatus.UNAUTHORIZED, "unknown invite token: ask for a new invite link")
    run_id, name, revoked = found
    if revoked:
        raise Refused(HTTPStatus.UNAUTHORIZED, f"the invite of {name!r} was revoked: ask for a new invite link")
    if run_id != run.id:
        raise Refused(HTTPStatus.FORBIDDEN, f"this invite token is for another run, not {run.name}")
    return name


def is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to any address


def check_url_base(url_base: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL like http://annotate.example.org:8000; ValueError otherwise."""
    try:
        parts = urlsplit(url_base)
        port = parts.port
    except ValueError as err:
        raise ValueError(f"not a URL: {err}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or \
            parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"expected http(s)://HOST[:PORT] (the page is served at the root), got {url_base!r}")
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def served_origins(host: str, port: int, url_base: str | None = None) -> set[tuple[str, str, int]]:
    """The (scheme, host, port) origins at which a server bound to host:port is reached: the bound address
    (with the loopback names when it is loopback, or also this machine's name when it binds every
    address; no DNS lookup) and `url_base`, the address annotators are given (a LAN address, a proxy)."""
    if is_wildcard(host):
        names = {*LOOPBACK_NAMES, socket.gethostname().lower()}
    elif is_loopback(host):
        names = {*LOOPBACK_NAMES, host.lower()}
    else:
        names = {host.lower()}
    origins = {("http", name, port) for name in names}
    if url_base:
        origins.add(check_url_base(url_base))
    return origins


def _host_port(text: str) -> tuple[str, int | None]:
    parts = urlsplit("//" + text)
    port = parts.port  # ValueError for a port that is not a number
    if not parts.hostname or parts.username or parts.password or parts.path:
        raise ValueError(text)
    return parts.hostname.lower(), port


def check_host(origins, host_header: str | None) -> None:
    """Refused (421) unless the Host header names one of `origins` (no DNS-rebound name)."""
    try:
        name, port = _host_port(host_header or "")
    except ValueError:
        name, port = None, None
    if not any(name == h and (port == p or (port is None and p == DEFAULT_PORTS[s])) for s, h, p in origins):
        raise Refused(HTTPStatus.MISDIRECTED_REQUEST, f"Host {host_header!r} is not an address this server "
                      "serves (the addresses it serves are printed when it starts; add one with --url_base)")


def check_origin(origins, origin_header: str | None) -> None:
    """Refused (403) when an Origin header is present and is not one of `origins` (another site's page)."""
    if origin_header is None:
        return
    try:
        parts = urlsplit(origin_header)
        found = (parts.scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(parts.scheme))
    except ValueError:
        found = None
    if found not in origins:
        raise Refused(HTTPStatus.FORBIDDEN, f"requests from origin {origin_header!r} are refused: only the "
                      "annotation page itself may call this API")


def format_origin(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")


def check_fetch_site(value: str | None) -> None:
    """Refused (403) for an API call a browser says another site made (Sec-Fetch-Site)."""
    if value is not None and value not in ("same-origin", "none"):
        raise Refused(HTTPStatus.FORBIDDEN, f"Sec-Fetch-Site {value!r}: only the annotation page itself may "
                      "call this API")
