"""Reference profiles through ``RemoteClient``: the server's ``profile_routes``. Mixed into
``RemoteClient`` only; the methods keep the signatures of ``client_profiles.ProfileMethods``.

Recording a profile needs the role that registers versions (``log``); the server records
the signed-in user, whatever ``actor`` says."""

from __future__ import annotations

from modelrail.client_profiles import BatchProfileReading, ProfileBackfill
from modelrail.errors import ServerResponseError
from modelrail.monitoring.profiles import ReferenceProfile
from modelrail.refs import Ref
from modelrail.remote.connection import ServerConnection, segment


class RemoteProfileMethods(BatchProfileReading, ProfileBackfill):
    connection: ServerConnection

    def reference_profile(self, ref: str) -> ReferenceProfile | None:
        Ref.parse(ref)  # a malformed reference is refused here, as a local client does
        found = self.connection.get(f"/versions/{segment(ref)}/reference-profile")
        if not isinstance(found, dict) or "profile" not in found:
            raise ServerResponseError(f"{self.connection.url} answered no reference profile")
        document = found["profile"]
        where = f"the reference profile of {ref} from {self.connection.url}"
        return None if document is None else ReferenceProfile.from_json(document, where)

    def record_reference_profile(
        self, ref: str, profile: ReferenceProfile, *, actor: str | None = None
    ) -> None:
        Ref.parse(ref)
        body = {"profile": profile.to_json()}
        self.connection.post(f"/versions/{segment(ref)}/reference-profile", body, repeatable=True)
