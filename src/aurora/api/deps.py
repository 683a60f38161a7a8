"""Request helpers shared by the routes: authentication, bounded body reading, decompression."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable

from fastapi import Request

from aurora.app import Aurora
from aurora.auth import Principal
from aurora.errors import BadInput, Forbidden, TooLarge, Unauthorized


def get_aurora(request: Request) -> Aurora:
    aurora: Aurora = request.app.state.aurora
    return aurora


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits a request whose bearer token has ``scope`` (or a scope implying it)."""

    async def check(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        token = ""
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        if not token:
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>' (create one with "
                               "'aurora token create --scope read')")
        principal = get_aurora(request).tokens.verify(token)
        if principal is None:
            raise Unauthorized("the token is not valid or was revoked")
        if not principal.allows(scope):
            raise Forbidden(f"this token's scopes ({', '.join(sorted(principal.scopes))}) do not include "
                            f"'{scope}'")
        request.state.principal = principal
        return principal

    return check


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes of body; refuse larger bodies before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise BadInput("Content-Length is not a number") from exc
        if size > limit:
            raise TooLarge(f"request body is {size} bytes; the limit is {limit} (server.max_body_bytes)")
    parts = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"request body exceeds {limit} bytes (server.max_body_bytes)")
        parts.append(chunk)
    return b"".join(parts)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo gzip/deflate Content-Encoding with a bound on the inflated size (zip bombs)."""
    enc = (encoding or "identity").lower().strip()
    if enc in ("identity", ""):
        return body
    if enc not in ("gzip", "deflate"):
        raise BadInput(f"Content-Encoding {enc!r} is not supported here; use gzip, deflate or none")
    d = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = d.decompress(body, limit + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise BadInput(f"body is not valid {enc} data: {exc}") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise TooLarge(f"decompressed body exceeds {limit} bytes (server.max_body_bytes)")
    return out
