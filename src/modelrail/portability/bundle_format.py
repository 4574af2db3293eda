"""The layout of a ``.mrbundle`` file: what ``modelrail export`` writes and ``import`` reads.

A bundle is a zip archive (ZIP64, so members may exceed 4 GiB) holding::

    manifest.json                         format, format version, source store, contents,
                                          and the sha256 and size of every other member
    records/runs/<run id>.json            a RunRecord (every metric point, params, ...)
    records/versions/<model>/<n>.json     a VersionRecord
    records/history.json                  the HistoryRecords of the bundled versions
    blobs/<sha256>                        a model file, predictor form or run artifact,
                                          named by the sha256 of its bytes

Zip, not tar: a reader reaches each member on its own, so the manifest is read first and
every member checked before anything is imported, then read again to import it, without
unpacking the archive anywhere. Records are JSON (``portability.records``); blobs are
stored as they are (model files are mostly compressed already).

``FORMAT_VERSION`` grows when a reader of the older format could misread a new bundle; a
bundle with a larger number is refused by this modelrail with a message to upgrade.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelrail.errors import BundleError

FORMAT = "modelrail-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HISTORY = "records/history.json"
SUFFIX = ".mrbundle"

_RUN = re.compile(r"^records/runs/(?P<id>[0-9a-f]{32})\.json$")
_VERSION = re.compile(
    r"^records/versions/(?P<model>[A-Za-z0-9][A-Za-z0-9._-]{0,127})/(?P<n>\d+)\.json$"
)
_BLOB = re.compile(r"^blobs/(?P<sha256>[0-9a-f]{64})$")


def run_member(run_id: str) -> str:
    return f"records/runs/{run_id}.json"


def version_member(model: str, version: int) -> str:
    return f"records/versions/{model}/{version}.json"


def blob_member(sha256: str) -> str:
    return f"blobs/{sha256}"


def member_kind(name: str) -> str | None:
    """``run``, ``version``, ``history`` or ``blob`` for a member a bundle may hold."""
    if name == HISTORY:
        return "history"
    for kind, pattern in (("run", _RUN), ("version", _VERSION), ("blob", _BLOB)):
        if pattern.match(name):
            return kind
    return None


def blob_sha256(name: str) -> str:
    found = _BLOB.match(name)
    assert found is not None
    return found.group("sha256")


@dataclass(frozen=True)
class Member:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What a bundle says about itself; ``members`` covers every other file in it."""

    format_version: int
    modelrail_version: str
    created_at: float
    created_by: str
    source_store: str  # the store's address as a person reads it
    source_id: str  # the store's random id (``origin`` of its history events)
    versions: tuple[str, ...]  # the references bundled, e.g. ("churn:7",)
    runs: int
    events: int
    members: Mapping[str, Member]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "modelrail_version": self.modelrail_version,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "source_store": self.source_store,
            "source_id": self.source_id,
            "contents": {"versions": list(self.versions), "runs": self.runs, "events": self.events},
            "members": {
                name: {"sha256": m.sha256, "size": m.size}
                for name, m in sorted(self.members.items())
            },
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> Manifest:
        """The manifest, or ``BundleError``: not a bundle, a newer format, or damaged."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise BundleError(
                f"{where} is not a modelrail bundle: its manifest names no {FORMAT!r} format"
            )
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleError(
                f"{where}: its manifest's format_version {version!r} is not a whole number"
            )
        if version > FORMAT_VERSION:
            made_by = data.get("modelrail_version", "a newer modelrail")
            raise BundleError(
                f"{where} was written by modelrail {made_by} in bundle format {version}; this "
                f"modelrail reads bundle format {FORMAT_VERSION} and older: upgrade modelrail "
                "to import it. Nothing was imported"
            )
        try:
            contents = data["contents"]
            members = {
                str(name): Member(str(m["sha256"]), int(m["size"]))
                for name, m in dict(data["members"]).items()
            }
            return cls(
                format_version=version,
                modelrail_version=str(data["modelrail_version"]),
                created_at=float(data["created_at"]),
                created_by=str(data["created_by"]),
                source_store=str(data["source_store"]),
                source_id=str(data["source_id"]),
                versions=tuple(str(v) for v in contents["versions"]),
                runs=int(contents["runs"]),
                events=int(contents["events"]),
                members=members,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"{where}: its manifest is damaged ({exc!r}); nothing was imported"
            ) from exc
