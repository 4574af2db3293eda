"""The team server's artifact routes: content-addressed bytes up and down, streamed (never
held whole in memory), checked against their sha256 on both ends, and resumable.

Under ``/api/v1``; ``{sha256}`` is 64 lowercase hex digits, anything else is refused with
422 naming the field ``sha256``. Refusals are the server's usual JSON errors.

``GET /artifacts/{sha256}`` (permission ``read``)
    The bytes in chunks, ``Content-Length`` their size. The whole file is checked against
    its address before the answer starts (damaged: 500 ``ArtifactIntegrityError``; absent:
    404 ``ArtifactNotFoundError``) and hashed again as it is sent, the last chunk held back
    until that second hash matches: a file changed on disk after the check is cut short,
    never completed, so no client receives a whole blob that does not match its address.
    ``Range: bytes=N-`` (that form only) answers 206 with the bytes from N on, so a client
    continues a dropped download; other ranges are ignored (the whole blob, 200).
``HEAD /artifacts/{sha256}`` (``read``)
    The same answer without the body: ``Content-Length`` is the blob's size.
``PUT /artifacts/{sha256}`` (``log``)
    The body is the blob, or the part of it from byte ``Upload-Offset`` (default 0) on;
    ``Upload-Length`` is the blob's whole size (without it, this body ends the blob). The
    bytes are appended to a partial file in the server's staging folder and hashed as they
    arrive; the offset may not pass what the server holds (409), and bytes held past it are
    dropped. Once the bytes held reach ``Upload-Length`` (or the body ends) their sha256 is
    compared with the address: equal, the blob is published into the artifact store (201);
    different, 422 and the partial file is deleted, so nothing is stored. A blob stored
    already answers 200 without reading the body; a body that stops short of
    ``Upload-Length`` answers 202. A dropped connection keeps every byte that was written.
``GET|HEAD /artifacts/{sha256}/upload`` (``log``)
    Where an upload stands. A client that lost its connection asks this, then sends the
    rest with ``PUT`` from that offset.

Every ``PUT`` and ``/upload`` answer is ``{"sha256", "stored", "offset"}`` (``offset``: the
bytes the server holds, the size once stored), with the offset in an ``Upload-Offset``
header too, on a 409 as well. A blob may be at most ``max_upload_bytes`` (a larger
``Upload-Length`` or body: 413). One request writes a blob's partial file at a time (a second
is 409: ask again later), and partial files untouched for a day are deleted when another
upload starts. The partial files themselves are kept by ``uploads.py``; this module is HTTP.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from modelrail.artifacts import ArtifactStore
from modelrail.client import Client
from modelrail.entities import User
from modelrail.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ConflictError,
    InvalidRequestError,
)
from modelrail.permissions import require
from modelrail.server import payload
from modelrail.server.api_errors import error_response
from modelrail.server.uploads import CHUNK, OFFSET_HEADER, Partial, Staging

SignedIn = Callable[[Request], Awaitable[User]]

DEFAULT_MAX_UPLOAD_BYTES = 4 << 30
LENGTH_HEADER = "Upload-Length"
_RANGE = re.compile(r"bytes=(\d{1,19})-")

log = logging.getLogger("modelrail.server")


def artifact_routes(
    client: Client,
    signed_in: SignedIn,
    api: str,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
) -> list[Route]:
    """The routes under ``api`` (``/api/v1``) that move artifact bytes."""
    store = client.artifacts
    staging = Staging(store.root / "staging" / "uploads")

    async def blob(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "log" if request.method == "PUT" else "read")
        sha256 = _address(request)
        if request.method == "PUT":
            return await _put(request, store, staging, sha256, max_upload_bytes)
        return await _get(request, store, sha256)

    async def upload_state(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "log")
        sha256 = _address(request)
        size = await run_in_threadpool(_stored_size, store, sha256)
        if size is not None:
            return _state(sha256, True, size)
        return _state(sha256, False, await run_in_threadpool(staging.held, sha256))

    return [
        Route(f"{api}/artifacts/{{sha256}}", blob, methods=["GET", "HEAD", "PUT"]),
        Route(f"{api}/artifacts/{{sha256}}/upload", upload_state, methods=["GET", "HEAD"]),
    ]


# -- download ---------------------------------------------------------------------------------


async def _get(request: Request, store: ArtifactStore, sha256: str) -> Response:
    handle = await run_in_threadpool(store.open_verified, sha256)
    if handle is None:
        raise ArtifactNotFoundError(f"the server holds no artifact with sha256 {sha256}")
    try:
        size = os.fstat(handle.fileno()).st_size
        start = _range_start(request.headers.get("range"), size)
    except BaseException:
        handle.close()
        raise
    headers = {
        "Content-Length": str(size - (start or 0)),
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
    }
    if start is not None:
        headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
    status = 200 if start is None else 206
    if request.method == "HEAD":
        handle.close()
        return Response(status_code=status, headers=headers)
    return _BlobResponse(handle, sha256, size, start or 0, status=status, headers=headers)


class _BlobResponse(StreamingResponse):
    """Streams ``_sent``, and closes the file when the answer ends however it ends (a client
    gone mid-way cancels the stream: left to the garbage collector, the file would be closed
    late, or never if the stream had not started)."""

    def __init__(
        self,
        handle: BinaryIO,
        sha256: str,
        size: int,
        start: int,
        *,
        status: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(_sent(handle, sha256, size, start), status_code=status, headers=headers)
        self._handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._handle.close()


def _range_start(header: str | None, size: int) -> int | None:
    """Where ``Range: bytes=N-`` starts; None for no range or a form not offered."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    start = int(match.group(1))
    if start >= size:
        raise InvalidRequestError(
            f"the range starts at byte {start} but the artifact has {size} bytes",
            field="Range",
            status=416,
        )
    return start


def _sent(handle: BinaryIO, sha256: str, size: int, start: int) -> Iterator[bytes]:
    """The bytes from ``start`` on, hashed again from byte 0 as they are read. The last
    chunk waits for the hash: the file was checked before the answer began, but the disk
    may change it since, and a client must never receive all of a blob that does not match
    (it would see its whole Content-Length arrive). On a mismatch the connection is cut."""
    with handle:
        digest = hashlib.sha256()
        position = 0
        waiting = b""
        while position < size:
            chunk = handle.read(min(CHUNK, size - position))
            if not chunk:
                break
            digest.update(chunk)
            if position + len(chunk) > start:
                if waiting:
                    yield waiting
                waiting = chunk[max(0, start - position) :]
            position += len(chunk)
        if position != size or digest.hexdigest() != sha256:
            log.error("modelrail server: artifact %s changed while it was sent: cut short", sha256)
            raise ArtifactIntegrityError(
                f"artifact {sha256} changed on the server while it was sent; it was cut short"
            )
        if waiting:
            yield waiting


# -- upload -----------------------------------------------------------------------------------


async def _put(
    request: Request, store: ArtifactStore, staging: Staging, sha256: str, max_bytes: int
) -> Response:
    offset = _header_number(request, OFFSET_HEADER) or 0
    total = _header_number(request, LENGTH_HEADER)
    declared = _header_number(request, "Content-Length")
    limit = max_bytes if total is None else total
    if total is not None and total > max_bytes:
        raise InvalidRequestError(
            f"the artifact is {total:,} bytes; this server takes at most {max_bytes:,}",
            field=LENGTH_HEADER,
            status=413,
        )
    if offset > limit:
        raise InvalidRequestError(
            f"{OFFSET_HEADER} {offset:,} is past the artifact's end ({limit:,} bytes)",
            field=OFFSET_HEADER,
        )
    if declared is not None and offset + declared > limit:
        raise _too_long(limit)
    size = await run_in_threadpool(_stored_size, store, sha256)
    if size is not None:
        # Addresses are content hashes: the same bytes are there, the body is not needed.
        return _state(sha256, True, size)
    try:
        partial = await staging.begin(sha256, offset)
    except ConflictError as busy:
        answer = error_response(busy)
        answer.headers[OFFSET_HEADER] = str(await run_in_threadpool(staging.held, sha256))
        return answer
    try:
        await _receive(request, partial, limit)
        partial.keep()
        if total is not None and partial.size < total:
            return _state(sha256, False, partial.size, status=202)
        arrived = partial.digest.hexdigest()
        if arrived != sha256:
            partial.discard()
            raise InvalidRequestError(
                f"the {partial.size:,} bytes sent have sha256 {arrived[:12]}..., not the "
                f"address {sha256[:12]}...: nothing was stored",
                field="body",
            )
        await run_in_threadpool(store.put_hashed, partial.path, sha256, partial.size)
        return _state(sha256, True, partial.size, status=201)
    finally:
        partial.close()
        staging.end(sha256)


async def _receive(request: Request, partial: Partial, limit: int) -> None:
    """Append the body to ``partial`` in chunks of about a MiB, written by a worker thread.
    A dropped connection keeps what arrived (a resume continues from it); any other failure
    drops this request's bytes again."""
    buffer = bytearray()
    try:
        async for chunk in request.stream():
            if partial.size + len(buffer) + len(chunk) > limit:
                raise _too_long(limit)
            buffer += chunk
            if len(buffer) >= CHUNK:
                data = bytes(buffer)
                buffer.clear()
                await run_in_threadpool(partial.write, data)
    except ClientDisconnect:
        partial.write(bytes(buffer))
        partial.keep()
        raise InvalidRequestError(
            "the connection closed before the body ended", field="body", status=400
        ) from None
    except BaseException:
        partial.rewind()
        raise
    if buffer:
        await run_in_threadpool(partial.write, bytes(buffer))


def _too_long(limit: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"the artifact would be more than {limit:,} bytes", field="body", status=413
    )


# -- shared -----------------------------------------------------------------------------------


def _address(request: Request) -> str:
    return payload.sha256_text("sha256", str(request.path_params["sha256"]))


def _header_number(request: Request, name: str) -> int | None:
    text = request.headers.get(name)
    if text is None:
        return None
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise InvalidRequestError(f"the {name} header must be a whole number of bytes", field=name)
    return int(text)


def _stored_size(store: ArtifactStore, sha256: str) -> int | None:
    """The size of the blob when the store holds it intact; a damaged copy counts as none,
    so an upload replaces it."""
    try:
        handle = store.open_verified(sha256)
    except ArtifactIntegrityError:
        return None
    if handle is None:
        return None
    with handle:
        return os.fstat(handle.fileno()).st_size


def _state(sha256: str, stored: bool, offset: int, *, status: int = 200) -> JSONResponse:
    return JSONResponse(
        {"sha256": sha256, "stored": stored, "offset": offset},
        status_code=status,
        headers={OFFSET_HEADER: str(offset)},
    )
