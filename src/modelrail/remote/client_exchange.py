"""Export and import through ``RemoteClient``: a bundle is read and written on this machine,
its records and files come from or go to the server. Mixed into ``RemoteClient`` only.

Exporting reads through the server (any user who may read). Importing writes authors and
times other than the caller's, so the server takes it from admins only: the bundle is
checked here first, uploaded as a content-addressed file (resumable, like any artifact),
then checked again and imported by the server (``POST /api/v1/imports``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modelrail.client_exchange import ExchangeMethods
from modelrail.remote.connection import ServerConnection
from modelrail.remote.decode import decode, decode_list

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.portability.bundle_write import Progress
    from modelrail.portability.exchange import ImportSummary
    from modelrail.portability.records import HistoryRecord
    from modelrail.store.import_repo import ImportRow


class RemoteExchangeMethods:
    connection: ServerConnection

    if TYPE_CHECKING:

        @property
        def artifacts(self) -> ArtifactStore: ...

    def store_id(self) -> str:
        """The random id that names the server's store in the bundles it writes."""
        return decode(str, self.connection.get("/store-id"), "store id")

    # The same export as a local client's: it reads through the methods both offer.
    export_bundle = ExchangeMethods.export_bundle

    def import_bundle(
        self,
        path: str | Path,
        *,
        progress: Progress | None = None,
        name: str | None = None,
        actor: str | None = None,
    ) -> ImportSummary:
        """Check the bundle here, upload it, and have the server import it as the signed-in
        admin (``actor`` is the signed-in user on a server, whatever is passed)."""
        from modelrail.portability.bundle_read import BundleReader
        from modelrail.portability.exchange import ImportSummary

        with BundleReader(path) as bundle:
            bundle.verify(progress)
        stored = self.artifacts.put_file(path)
        body = {"sha256": stored.sha256, "size": stored.size, "name": name or Path(path).name}
        found = self.connection.post("/imports", body, repeatable=True)
        return decode(ImportSummary, found, "import")

    def imports(self) -> list[ImportRow]:
        from modelrail.store.import_repo import ImportRow

        return decode_list(ImportRow, self.connection.get("/imports"), "imports")

    def imported_history(self, model: str | None = None) -> list[HistoryRecord]:
        from modelrail.portability.records import HistoryRecord

        found = self.connection.get("/imported-history", {"model": model})
        return decode_list(HistoryRecord, found, "imported history")
