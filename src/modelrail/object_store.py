"""Object-store URLs (``s3://bucket/prefix``, ``gs://...``) opened through pyarrow's file
systems, for the artifact store and for batch inputs alike.

pyarrow is imported only when a URL is opened: a local project never loads it here.
"""

from __future__ import annotations

import re
from typing import Any

from modelrail.errors import ModelrailError


def is_object_store(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def shown_url(url: str) -> str:
    """The URL without its query string or user part, where keys may be."""
    return re.sub(r"://[^/@]*@", "://", url.split("?", 1)[0])


def open_object_store(url: str, what: str, error: type[ModelrailError]) -> tuple[Any, str, str]:
    """pyarrow's file system for ``url``, the path on it, and the URL as messages show it;
    ``error`` (naming ``what``) when pyarrow cannot open it."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    shown = shown_url(url)
    try:
        filesystem, path = pafs.FileSystem.from_uri(url)
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise error(
            f"{what} {shown!r} is not a folder or an object store URL that pyarrow can open "
            f"(s3://bucket/prefix, gs://bucket/prefix): {str(exc).replace(url, shown)}"
        ) from exc
    return filesystem, path, shown
