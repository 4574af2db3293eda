"""The one error tree. Every error a user can meet is a ``ModelrailError``.

Each class carries the process exit code the CLI uses and the HTTP status the
servers answer with, so both layers map errors in exactly one place and never
look at message text.

An error that names a parameter of a library call names it with a placeholder,
``"{force} skips the gates, so it needs {reason}"`` with ``params=("force", "reason")``:
``str(error)`` and ``error.message`` spell it as the parameter name (``force``), and a
front end spells it its own way through ``error.render(spelling)``; the CLI passes its one
table of flags (``--force``), so the library never commits to a CLI spelling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ModelrailError(Exception):
    """Base of every error modelrail raises on purpose.

    ``params`` are the parameter names the message speaks of, the one at fault first
    (``param``); each appears in the message template as ``{name}``."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str, *, params: Iterable[str] = ()) -> None:
        self.template = message
        self.params: tuple[str, ...] = tuple(params)
        self.message = self.render({})
        super().__init__(self.message)

    @property
    def param(self) -> str | None:
        """The parameter at fault, if the error names one."""
        return self.params[0] if self.params else None

    def render(self, spelling: Mapping[str, str]) -> str:
        """The message with each parameter spelled by ``spelling`` (name -> how a front end
        calls it, e.g. ``"id_columns" -> "--id-column"``); names it lacks stay as they are."""
        text = self.template
        for name in self.params:
            text = text.replace("{" + name + "}", spelling.get(name, name))
        return text

    def __str__(self) -> str:
        return self.message


# -- configuration and store -------------------------------------------------


class ConfigError(ModelrailError):
    """A setting, environment variable or config file entry is wrong."""

    exit_code = 2
    http_status = 500


class ProjectNotFoundError(ConfigError):
    """No ``.modelrail/`` folder here or above, and no ``MODELRAIL_STORE`` set."""


class StoreURLError(ConfigError):
    """``MODELRAIL_STORE`` (or a store URL argument) cannot be parsed."""


class StoreUnavailableError(ModelrailError):
    """The metadata database cannot be reached or opened."""

    exit_code = 3
    http_status = 503


class ArtifactStoreUnavailableError(StoreUnavailableError):
    """An object-store artifact root (s3://, gs://) cannot be reached or refuses a request."""


class StoreSchemaError(ModelrailError):
    """The database holds a schema this version of modelrail does not know."""

    exit_code = 3
    http_status = 503


class ConflictError(ModelrailError):
    """The change conflicts with the current state (a concurrent writer won, or the approval
    request was decided already); it was not applied."""

    exit_code = 5
    http_status = 409


# -- user input ----------------------------------------------------------------


class InvalidInputError(ModelrailError):
    """A value given by the user is malformed or out of range."""

    exit_code = 2
    http_status = 400


class InvalidMetricError(InvalidInputError):
    """A metric value is not a finite real number, or its key/step is wrong."""


class ParamConflictError(InvalidInputError):
    """A parameter was logged again with a different value in the same run."""

    http_status = 409


class UnsupportedDatasetError(InvalidInputError):
    """``log_dataset`` got an object or file type it cannot fingerprint."""


class DatasetReadError(InvalidInputError):
    """A dataset file exists but cannot be read (corrupt, wrong format)."""


class InvalidReferenceError(InvalidInputError):
    """A model reference such as ``name:7`` or ``name@prod`` is malformed."""


class InvalidRequestError(InvalidInputError):
    """A prediction request that does not fit: names the field at fault."""

    http_status = 422

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int = 422,
        rows: Iterable[int] = (),
    ) -> None:
        super().__init__(message)
        self.field = field
        self.http_status = status
        # The positions of the rows at fault, where the model knows them: batch sets exactly
        # those aside instead of searching for them.
        self.rows: tuple[int, ...] = tuple(int(r) for r in rows)

    def for_rows(self, positions: Any) -> InvalidRequestError:
        """The same refusal, its rows counted in a larger input (``positions``: where each
        row of the refused input sits in it)."""
        return InvalidRequestError(
            self.message,
            field=self.field,
            status=self.http_status,
            rows=(int(positions[r]) for r in self.rows),
        )


class ModelFlavorError(InvalidInputError):
    """The object given to ``log_model`` cannot be saved by any flavor."""


class ModelRoundTripError(ModelFlavorError):
    """The model's safe format saved it but cannot load it back (skops and a part it does
    not restore, say): nothing was registered. Logging it with ``allow_pickle=True`` saves
    it with pickle instead, marked unsafe."""


class RunStateError(InvalidInputError):
    """The operation does not fit the run's state (e.g. logging to a finished run)."""

    http_status = 409


# -- lookups -------------------------------------------------------------------


class NotFoundError(ModelrailError):
    """Something named by the user does not exist."""

    exit_code = 4
    http_status = 404


class RunNotFoundError(NotFoundError):
    pass


class ModelNotFoundError(NotFoundError):
    pass


class ModelVersionNotFoundError(NotFoundError):
    pass


class ExperimentNotFoundError(NotFoundError):
    pass


class ArtifactNotFoundError(NotFoundError):
    pass


class EnvironmentNotFoundError(NotFoundError):
    pass


class PolicyNotFoundError(NotFoundError):
    """The store holds no shared policy, or not the version asked for."""


class RequestNotFoundError(NotFoundError):
    pass


# -- environments ----------------------------------------------------------------


class PromotionError(InvalidInputError):
    """A promotion or rollback that the chain or the history does not allow."""

    http_status = 409


class ApprovalError(InvalidInputError):
    """An approval that is not allowed: approving one's own request."""

    http_status = 403


class GateFailedError(ModelrailError):
    """One or more gates failed; nothing was changed. ``results`` holds every gate."""

    exit_code = 7
    http_status = 422

    def __init__(
        self, message: str, results: tuple[object, ...] = (), *, params: Iterable[str] = ()
    ) -> None:
        super().__init__(message, params=params)
        self.results = results


# -- serving -----------------------------------------------------------------------


class ServerStartError(ModelrailError):
    """The server cannot start: port in use, nothing to serve, a model that fails to load."""

    exit_code = 8
    http_status = 503


class DockerBuildError(ModelrailError):
    """The image's build context or ``docker build`` failed."""

    exit_code = 9
    http_status = 500


# -- batch scoring -----------------------------------------------------------------


class BatchInputError(InvalidInputError):
    """A batch input file, query, column or row cannot be scored; names the culprit."""


class BatchOutputError(ModelrailError):
    """The batch output (database, Redis, folder) cannot be reached or does not fit."""

    exit_code = 10
    http_status = 502


class BatchRunNotFoundError(NotFoundError):
    """No batch run has this id."""


class ScheduleNotFoundError(NotFoundError):
    """No batch schedule has this name."""


class BatchRunStateError(InvalidInputError):
    """The batch run or schedule is in a state that does not allow this (e.g. resume a
    finished run, or start a job that is already running)."""

    http_status = 409


# -- the web dashboard ---------------------------------------------------------------


class LoginRequiredError(ModelrailError):
    """A change asked of the dashboard without its token."""

    exit_code = 2
    http_status = 401


class ForbiddenError(ModelrailError):
    """A wrong token, or a form posted from another site."""

    exit_code = 2
    http_status = 403


# -- identity: users, tokens and roles ------------------------------------------------


class AuthenticationError(ModelrailError):
    """A token that does not sign anyone in: unknown, revoked, expired, or its user disabled.

    The message never contains the token. ``reason`` (``missing``, ``unknown``, ``revoked``,
    ``expired``, ``disabled``) is for logs and throttling: branch on it, not on the message."""

    exit_code = 11
    http_status = 401

    def __init__(self, message: str, *, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason


class ThrottledError(ModelrailError):
    """Too many failed sign-ins from one address: wait ``retry_after`` seconds."""

    exit_code = 13
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermissionDeniedError(ModelrailError):
    """A signed-in user whose roles do not allow the action; names the missing permission."""

    exit_code = 12
    http_status = 403

    def __init__(
        self, message: str, *, user: str, action: str, environment: str | None = None
    ) -> None:
        super().__init__(message)
        self.user = user
        self.action = action
        self.environment = environment


class UserExistsError(InvalidInputError):
    """A user of that name exists already (names are never reused, even when disabled)."""

    http_status = 409


class UserNotFoundError(NotFoundError):
    """No user has this name."""


class TokenNotFoundError(NotFoundError):
    """No API token has this id."""


# -- moving records between stores ----------------------------------------------------


class BundleError(InvalidInputError):
    """A file that cannot be imported as a bundle: missing, not a bundle, damaged, truncated,
    tampered with (a member's sha256 differs from the manifest's), or written by a newer
    modelrail. Nothing was imported."""


class ImportConflictError(ConflictError):
    """Records to import clash with this store's: the same model version number or run id
    holding different content. Names the record; nothing was imported."""


class MlflowSourceError(InvalidInputError):
    """An MLflow tracking store that cannot be imported: missing, not an MLflow store, or
    written by an MLflow whose schema lacks what the import reads. Names the source."""


class MlflowSourceUnavailableError(StoreUnavailableError):
    """An MLflow database or server that does not answer (refused, timed out, an error of
    its own)."""


# -- integrity -------------------------------------------------------------------


class ArtifactIntegrityError(ModelrailError):
    """A stored artifact is missing, changed or truncated: its sha256 does not match."""

    exit_code = 6
    http_status = 500


# -- a team server, seen from its clients -------------------------------------------------


class ServerUnavailableError(StoreUnavailableError):
    """The team server cannot be reached, or answered with an error of its own (5xx)."""


class ServerResponseError(StoreUnavailableError):
    """The team server's answer is not what this version of modelrail expects."""


class NotOnServerError(ConfigError):
    """What was asked is not offered by a team server (yet): it needs a local project."""


class CredentialsError(ConfigError):
    """No token for the team server (log in first), or the credentials file is unreadable."""


def error_class(name: str) -> type[ModelrailError] | None:
    """The error class called ``name`` (as a team server names it in an error answer)."""
    found = globals().get(name)
    if isinstance(found, type) and issubclass(found, ModelrailError):
        return found
    return None


# -- reproducing a version ------------------------------------------------------------------


class ReproduceError(ModelrailError):
    """A step of rebuilding a run cannot be done: no commit or script recorded, the commit
    missing from the repository, a package that cannot be installed, data moved or changed.
    Nothing made for the attempt is left behind."""

    exit_code = 14
    http_status = 422


class NotReproducedError(ModelrailError):
    """The run was rebuilt and rerun, and the result differs from the record (the message
    names what differed)."""

    exit_code = 15
    http_status = 422


# -- monitoring --------------------------------------------------------------------------------


class MonitoringDataError(ModelrailError):
    """A prediction log, label file or monitoring check cannot be read (damaged, or written
    by something else); the message names the file."""

    exit_code = 2
    http_status = 422


class FeedbackError(InvalidInputError):
    """Labels that cannot be attached: a missing id or label column, no ids, a file that
    cannot be read; nothing of the load is stored."""
