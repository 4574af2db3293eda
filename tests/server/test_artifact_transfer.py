"""Artifact bytes through the team server, over real HTTP on 127.0.0.1: a file uploaded by a
member through ``ArtifactStore.over(ServerBlobs(...))`` is stored on the server under its
sha256 and comes back byte for byte; bytes that do not match their address are neither
stored nor served; uploads and downloads cut off part way continue where they stopped
(a TCP proxy here cuts a connection after a number of bytes); junk is refused with a 4xx.

Users (conftest): vic viewer, mia member."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import random
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelrail.artifacts import ArtifactStore
from modelrail.errors import (
    ArtifactIntegrityError,
    PermissionDeniedError,
    ServerUnavailableError,
)
from modelrail.remote import connection
from modelrail.remote.blobs import ServerBlobs
from modelrail.remote.connection import ServerConnection
from modelrail.server.artifact_routes import _sent
from tests.server.conftest import HOST, TIMEOUT_S, Reply, Team, start_team

MiB = 1 << 20
API = "/api/v1/artifacts"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's waits between tries, shortened (as many tries, so the same bounds)."""
    monkeypatch.setattr(connection, "RETRY_WAITS_S", tuple(0.05 for _ in connection.RETRY_WAITS_S))


def blob(size: int, seed: int = 17) -> tuple[bytes, str]:
    data = random.Random(seed).randbytes(size)
    return data, hashlib.sha256(data).hexdigest()


def client_store(team: Team, user: str, tmp_path: Path, port: int | None = None) -> ArtifactStore:
    """A machine of the team: its own cache, the server's artifacts as ``user``."""
    url = f"http://{HOST}:{port or team.port}"
    blobs = ServerBlobs(ServerConnection(url, team.tokens[user], timeout=TIMEOUT_S))
    return ArtifactStore.over(blobs, cache=tmp_path / f"cache-{user}")


def on_server(team: Team, sha256: str) -> Path:
    return team.client.artifacts.path_for(sha256)


def held(team: Team, sha256: str) -> int:
    reply = team.get(f"{API}/{sha256}/upload", "mia")
    assert reply.status == 200, reply.body
    assert reply.headers["upload-offset"] == str(reply.json()["offset"])
    return int(reply.json()["offset"])


def put(team: Team, sha256: str, body: bytes, user: str = "mia", **headers: str) -> Reply:
    sent = {"Content-Type": "application/octet-stream"}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return team.request("PUT", f"{API}/{sha256}", user=user, raw=body, headers=sent)


# -- round trip and permissions ---------------------------------------------------------------


def test_a_file_uploaded_through_the_server_downloads_byte_for_byte(
    team: Team, tmp_path: Path
) -> None:
    data, sha = blob(5 * MiB + 123)
    laptop = client_store(team, "mia", tmp_path)

    stored = laptop.put_bytes(data)

    assert (stored.sha256, stored.size) == (sha, len(data))
    assert on_server(team, sha).read_bytes() == data
    assert laptop.location == f"http://{HOST}:{team.port}/api/v1/artifacts"
    other = client_store(team, "vic", tmp_path)
    assert other.read_verified(sha, size=len(data)) == data
    assert other.path_for(sha).read_bytes() == data  # cached, and checked on every read
    assert ServerBlobs(ServerConnection(f"http://{HOST}:{team.port}", team.tokens["vic"])).size(
        sha
    ) == len(data)
    head = team.request("HEAD", f"{API}/{sha}", user="vic")
    assert (head.status, head.headers["content-length"], head.body) == (200, str(len(data)), b"")
    assert held(team, sha) == len(data)


def test_a_viewer_may_download_but_not_upload(team: Team, tmp_path: Path) -> None:
    data, sha = blob(1000)
    viewer = client_store(team, "vic", tmp_path)

    with pytest.raises(PermissionDeniedError, match="may not log"):
        viewer.put_bytes(data)
    reply = put(team, sha, data, user="vic")
    assert reply.status == 403, reply.body
    assert team.get(f"{API}/{sha}/upload", "vic").status == 403
    assert not on_server(team, sha).exists()

    team.client.artifacts.put_bytes(data)
    assert client_store(team, "vic", tmp_path / "again").read_verified(sha) == data
    assert team.get(f"{API}/{sha}").status == 401  # and nobody without a token


def test_a_stored_artifact_is_not_sent_again(team: Team, tmp_path: Path) -> None:
    data, sha = blob(2 * MiB)
    team.client.artifacts.put_bytes(data)
    wrong = tmp_path / "wrong"
    wrong.write_bytes(bytes(len(data)))  # not the bytes of ``sha``: refused, if they were sent

    ServerBlobs(ServerConnection(f"http://{HOST}:{team.port}", team.tokens["mia"])).upload(
        wrong, sha, len(data)
    )
    reply = put(team, sha, bytes(10))
    assert reply.status == 200 and reply.json() == {
        "sha256": sha,
        "stored": True,
        "offset": len(data),
    }
    assert on_server(team, sha).read_bytes() == data


# -- integrity --------------------------------------------------------------------------------


def test_bytes_that_do_not_match_their_address_are_refused_and_nothing_is_stored(
    team: Team,
) -> None:
    data, sha = blob(3 * MiB)
    other, _ = blob(3 * MiB, seed=18)

    reply = put(team, sha, other)
    assert reply.status == 422, reply.body
    assert reply.json()["field"] == "body"
    assert "nothing was stored" in reply.json()["error"]
    assert not on_server(team, sha).exists()
    assert held(team, sha) == 0

    # In parts: the first part held, the wrong second one drops the whole upload.
    first = put(team, sha, data[:MiB], Upload_Offset="0", Upload_Length=str(len(data)))
    assert first.status == 202
    last = put(team, sha, other[MiB:], Upload_Offset=str(MiB), Upload_Length=str(len(data)))
    assert last.status == 422
    assert not on_server(team, sha).exists()
    assert held(team, sha) == 0
    assert team.get(f"{API}/{sha}", "vic").status == 404


def test_a_damaged_artifact_on_the_server_is_never_served(team: Team, tmp_path: Path) -> None:
    data, sha = blob(3 * MiB)
    team.client.artifacts.put_bytes(data)
    damaged = bytearray(data)
    damaged[-1] ^= 1
    on_server(team, sha).write_bytes(bytes(damaged))

    reply = team.get(f"{API}/{sha}", "vic")
    assert reply.status == 500
    assert reply.json()["kind"] == "ArtifactIntegrityError"
    assert len(reply.body) < 1000  # an error, none of the bytes
    assert team.request("HEAD", f"{API}/{sha}", user="vic").status == 500
    reader = client_store(team, "vic", tmp_path)
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        reader.read_verified(sha)
    assert not reader.path_for(sha).exists()
    with pytest.raises(ArtifactIntegrityError):
        ServerBlobs(ServerConnection(f"http://{HOST}:{team.port}", team.tokens["vic"])).size(sha)

    # The right bytes sent again replace the damaged copy.
    assert held(team, sha) == 0
    assert client_store(team, "mia", tmp_path).put_bytes(data).sha256 == sha
    assert reader.read_verified(sha) == data


def test_bytes_changed_on_the_server_after_its_check_are_cut_short(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, sha = blob(3 * MiB)
    team.client.artifacts.put_bytes(data)
    changed = bytearray(data)
    changed[5] ^= 1
    swapped = tmp_path / "swapped"
    swapped.write_bytes(bytes(changed))
    # The disk changes between the server's check and its reads: its check passed.
    monkeypatch.setattr(
        team.client.artifacts, "open_verified", lambda sha256, **_: swapped.open("rb")
    )

    conn = http.client.HTTPConnection(HOST, team.port, timeout=TIMEOUT_S)
    try:
        conn.request(
            "GET", f"{API}/{sha}", headers={"Authorization": f"Bearer {team.tokens['vic']}"}
        )
        response = conn.getresponse()
        assert response.status == 200
        received = b""
        while chunk := response.read(MiB):
            received += chunk
    except http.client.IncompleteRead as cut:
        received = cut.partial
    finally:
        conn.close()
    assert len(received) < len(data)  # the last chunk never left

    reader = client_store(team, "vic", tmp_path)
    with pytest.raises(ServerUnavailableError):
        reader.read_verified(sha)
    assert not reader.path_for(sha).exists()


def test_the_last_chunk_waits_for_the_whole_hash() -> None:
    data, sha = blob(2 * MiB + 10)
    assert b"".join(_sent(io.BytesIO(data), sha, len(data), 0)) == data
    assert b"".join(_sent(io.BytesIO(data), sha, len(data), MiB + 3)) == data[MiB + 3 :]

    changed = data[:-1] + bytes([data[-1] ^ 1])
    sent: list[bytes] = []
    with pytest.raises(ArtifactIntegrityError, match="cut short"):
        sent.extend(_sent(io.BytesIO(changed), sha, len(data), 0))
    assert b"".join(sent) == data[: 2 * MiB]  # everything but the last chunk
    with pytest.raises(ArtifactIntegrityError):
        list(_sent(io.BytesIO(data[:-1]), sha, len(data), 0))  # truncated since the check


# -- resuming ---------------------------------------------------------------------------------


def test_an_interrupted_upload_continues_where_the_server_stopped(
    team: Team, tmp_path: Path
) -> None:
    data, sha = blob(3 * MiB + 7)
    first = put(team, sha, data[: MiB + 5], Upload_Offset="0", Upload_Length=str(len(data)))
    assert first.status == 202, first.body
    assert first.headers["upload-offset"] == str(MiB + 5)
    assert held(team, sha) == MiB + 5
    ahead = put(
        team, sha, data[2 * MiB :], Upload_Offset=str(2 * MiB), Upload_Length=str(len(data))
    )
    assert ahead.status == 409, ahead.body
    assert ahead.headers["upload-offset"] == str(MiB + 5)

    # The client's file differs in the part the server holds: had the client sent it again,
    # the server would refuse the upload; it sends only the rest, which completes the blob.
    local = tmp_path / "local"
    local.write_bytes(bytes(MiB + 5) + data[MiB + 5 :])
    blobs = ServerBlobs(ServerConnection(f"http://{HOST}:{team.port}", team.tokens["mia"]))
    blobs.upload(local, sha, len(data))

    assert on_server(team, sha).read_bytes() == data
    assert held(team, sha) == len(data)
    assert not list((team.client.artifacts.root / "staging" / "uploads").glob("*.part"))


def test_uploads_and_downloads_cut_off_part_way_continue(team: Team, tmp_path: Path) -> None:
    data, sha = blob(6 * MiB + 1)
    with CuttingProxy(team.port, cut_up_after=3 * MiB) as proxy:
        client_store(team, "mia", tmp_path, port=proxy.port).put_bytes(data)
        assert proxy.cuts == 1
        # Everything again would be 9 MiB; the rest after what the server kept is far less.
        assert proxy.sent_up < len(data) + 2 * MiB
    assert on_server(team, sha).read_bytes() == data

    with CuttingProxy(team.port, cut_down_after=3 * MiB) as proxy:
        reader = client_store(team, "vic", tmp_path, port=proxy.port)
        assert reader.read_verified(sha, size=len(data)) == data
        assert proxy.cuts == 1
        assert proxy.sent_down < len(data) + MiB


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["A" * 64, "a" * 63, "a" * 65, "g" * 64, "../" + "a" * 61, "%20" + "a" * 61],
)
def test_an_address_that_is_not_a_sha256_is_refused(team: Team, address: str) -> None:
    for method, path, user in (
        ("GET", f"{API}/{address}", "vic"),
        ("HEAD", f"{API}/{address}", "vic"),
        ("PUT", f"{API}/{address}", "mia"),
        ("GET", f"{API}/{address}/upload", "mia"),
    ):
        reply = team.request(method, path, user=user, raw=b"x" if method == "PUT" else None)
        if reply.status == 404 and address.startswith(".."):
            continue  # the path itself changed: no such route
        assert reply.status == 422, (method, path, reply.body)
        if method != "HEAD":
            assert reply.json()["field"] == "sha256"


def test_a_missing_artifact_is_a_library_error_not_a_traceback(team: Team, tmp_path: Path) -> None:
    _, sha = blob(100)
    reply = team.get(f"{API}/{sha}", "vic")
    assert reply.status == 404 and reply.json()["kind"] == "ArtifactNotFoundError"
    assert team.request("HEAD", f"{API}/{sha}", user="vic").status == 404

    reader = client_store(team, "vic", tmp_path)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        reader.read_verified(sha)
    blobs = ServerBlobs(ServerConnection(f"http://{HOST}:{team.port}", team.tokens["vic"]))
    assert blobs.size(sha) is None
    assert blobs.download(sha, io.BytesIO()) is False


def test_bodies_beyond_their_bounds_and_junk_headers_are_refused(team: Team) -> None:
    data, sha = blob(1000)
    huge = put(team, sha, data, Upload_Offset="0", Upload_Length=str(1 << 50))
    assert huge.status == 413 and huge.json()["field"] == "Upload-Length"

    longer = put(team, sha, data + b"more", Upload_Length=str(len(data)))
    assert longer.status == 413, longer.body
    assert held(team, sha) == 0

    for name, value in (("Upload-Offset", "-1"), ("Upload-Offset", "x"), ("Upload-Length", "1e3")):
        reply = put(team, sha, data, **{name.replace("-", "_"): value})
        assert reply.status == 422 and reply.json()["field"] == name
    past = put(team, sha, b"", Upload_Offset="2000", Upload_Length="1000")
    assert past.status == 422
    ranged = team.get(f"{API}/{sha}", "vic", headers={"Range": "bytes=0-"})
    assert ranged.status == 404
    team.client.artifacts.put_bytes(data)
    assert team.get(f"{API}/{sha}", "vic", headers={"Range": "bytes=1000-"}).status == 416
    tail = team.get(f"{API}/{sha}", "vic", headers={"Range": "bytes=990-"})
    assert (tail.status, tail.body) == (206, data[990:])
    assert tail.headers["content-range"] == "bytes 990-999/1000"
    whole = team.get(f"{API}/{sha}", "vic", headers={"Range": "bytes=0-9,20-29"})
    assert (whole.status, whole.body) == (200, data)  # a form not offered: ignored


@pytest.fixture
def small_team(tmp_path: Path) -> Iterator[Team]:
    """A server built to take artifacts of at most 1,000 bytes."""
    store = f"sqlite:///{tmp_path / '.modelrail' / 'modelrail.db'}"
    yield from start_team(store, tmp_path, max_upload_bytes=1000)


def test_a_server_built_with_a_small_upload_limit_refuses_a_larger_artifact(
    small_team: Team,
) -> None:
    data, sha = blob(1001)
    declared = put(small_team, sha, data, Upload_Length=str(len(data)))
    assert declared.status == 413 and declared.json()["field"] == "Upload-Length"
    undeclared = put(small_team, sha, data)
    assert undeclared.status == 413 and undeclared.json()["field"] == "body"
    assert not on_server(small_team, sha).exists()
    assert held(small_team, sha) == 0

    fits, fits_sha = blob(1000)
    assert put(small_team, fits_sha, fits).status == 201
    assert on_server(small_team, fits_sha).read_bytes() == fits


# -- a proxy that cuts a connection -----------------------------------------------------------


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 in front of the server. The first connection that carries
    more than ``cut_up_after`` bytes to the server (or ``cut_down_after`` from it) is cut
    there, as a network failure would; it counts the bytes it forwards either way."""

    def __init__(
        self, port: int, *, cut_up_after: int | None = None, cut_down_after: int | None = None
    ) -> None:
        self._target = port
        self._limits = {"up": cut_up_after, "down": cut_down_after}
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.cuts = 0
        self.sent_up = 0
        self.sent_down = 0

    def __enter__(self) -> CuttingProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=TIMEOUT_S)
        self._listener.close()
        assert not any(t.is_alive() for t in self._threads), "a proxy thread did not stop"

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._spawn(self._carry, downstream)

    def _carry(self, downstream: socket.socket) -> None:
        """One connection: both ways until either ends or is cut, then both closed."""
        downstream.settimeout(TIMEOUT_S)
        with downstream, socket.create_connection((HOST, self._target), TIMEOUT_S) as upstream:
            up = threading.Thread(target=self._pump, args=(downstream, upstream, "up"))
            up.start()
            self._pump(upstream, downstream, "down")
            for end in (downstream, upstream):
                _shut(end)  # wakes the other direction
            up.join(timeout=TIMEOUT_S)

    def _pump(self, source: socket.socket, target: socket.socket, way: str) -> None:
        forwarded = 0
        limit = self._limits[way]
        try:
            while data := source.recv(64 * 1024):
                with self._lock:
                    cut = limit is not None and self.cuts == 0 and forwarded + len(data) > limit
                    if cut:
                        self.cuts += 1
                        data = data[: limit - forwarded]  # type: ignore[operator]
                    if way == "up":
                        self.sent_up += len(data)
                    else:
                        self.sent_down += len(data)
                target.sendall(data)
                forwarded += len(data)
                if cut:
                    for end in (source, target):
                        _shut(end)
                    return
            _shut(target, socket.SHUT_WR)
        except OSError:
            _shut(target)


def _shut(end: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    with contextlib.suppress(OSError):  # closed already
        end.shutdown(how)
