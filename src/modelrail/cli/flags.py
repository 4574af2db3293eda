"""The one table from library parameter names to the CLI's flags.

Library errors name the parameters at fault by their Python names (``id_columns``); the
CLI shows the same errors with the flags a user typed (``--id-column``) through this table,
in the one place errors become messages and exit codes (``main.run``).
"""

from __future__ import annotations

from modelrail.errors import ModelrailError

FLAGS: dict[str, str] = {
    # promote, approve, rollback
    "force": "--force",
    "reason": "--reason",
    "if_holds": "--if-holds",
    "to": "--to",
    "to_version": "--to-version",
    # batch run and batch schedule
    "inputs": "--input",
    "query": "--query",
    "query_url": "--query-url",
    "id_columns": "--id-column",
    "batch_rows": "--batch-rows",
    "part_rows": "--part-rows",
    "ttl_seconds": "--ttl",
    "on_bad_rows": "--on-bad-rows",
    "engine": "--engine",
    "output": "--output",
    "table": "--table",
    "cron": "--cron",
    "timezone": "--timezone",
    "file_pattern": "--when-new-files",
    "catch_up": "--catch-up",
    "replace": "--replace",
    # serve, docker build
    "environment": "--env",
    "wait": "--wait",
    # reproduce
    "reuse_env": "--reuse-env",
    "data": "--data",
    "tolerance": "--tolerance",
    "repository": "--repository",
    "installer": "--installer",
    # export
    "everything": "--all",
    # card edit
    "section": "--section",
    "text": "--text",
    # import-mlflow
    "environments": "--env-map",
    "batch_size": "--batch-size",
    "trust_pickles": "--trust-pickles",
    # monitor
    "since": "--since",
    "until": "--until",
    "window_seconds": "--window",
    # serve
    "log_predictions": "--log-predictions",
}


def error_message(exc: ModelrailError) -> str:
    """The error's message as the CLI says it: parameters spelled as flags."""
    return exc.render(FLAGS)
