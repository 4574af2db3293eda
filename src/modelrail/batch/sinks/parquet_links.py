"""How a Parquet output publishes a run's files: each partition ``input=<fingerprint>`` is a
relative symbolic link to the folder of the run that wrote it, ``.runs/<run id>``.

A run publishes by renaming a new link over the partition's old one: one atomic rename, so
a reader listing the dataset (``pyarrow.dataset``, ``pandas.read_parquet``, Spark; none
needs to know about modelrail) sees all of the old files or all of the new ones. A journal,
``.runs/<run id>.publish``, written just before that rename, names the folder it replaces,
so whoever opens the output next finishes a publish that a kill interrupted: deletes the
replaced folder once the link is in place, or leaves the run's folder as its staging (for
its resume) when it is not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson

from modelrail.errors import BatchOutputError

_RUNS = ".runs"  # a folder per run: its staging, then (linked) its partition's files
_JOURNAL = ".publish"  # .runs/<run id>.publish: the partition being replaced, and its folder
_LINK = ".link"  # .runs/<run id>.link: the new link, renamed over the partition


class PartitionLinks:
    """The partitions of the dataset in ``folder`` and the run folders behind them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.runs = folder / _RUNS

    def run_folder(self, run_id: str) -> Path:
        return self.runs / run_id

    def partition_of(self, run_id: str) -> Path | None:
        """The partition that shows the run's files (None: the run has not published)."""
        return next((p for p, run in self._partitions() if run == run_id), None)

    def unpublished(self) -> list[str]:
        """Ids of the run folders that no partition shows."""
        linked = {run for _, run in self._partitions()}
        return sorted(p.name for p in self.runs.glob("*") if p.is_dir() and p.name not in linked)

    def discard(self, run_id: str) -> None:
        """Drop the run's folder, unless a partition shows it."""
        if self.partition_of(run_id) is not None:
            return
        shutil.rmtree(self.runs / run_id, ignore_errors=True)
        for suffix in (_JOURNAL, _LINK):
            (self.runs / f"{run_id}{suffix}").unlink(missing_ok=True)

    def publish(self, run_id: str, partition: Path) -> None:
        """Make the run's folder what readers of ``partition`` see, in one rename."""
        link = self.runs / f"{run_id}{_LINK}"
        journal = self.runs / f"{run_id}{_JOURNAL}"
        try:
            old = _linked_run(partition)
            plain = partition.is_dir() and old is None
            if plain:  # a plain folder (modelrail 0.1): moved among the runs' folders first
                old = f"plain-{uuid.uuid4().hex}"
            _write_atomically(journal, {"partition": partition.name, "replaces": old})
            if plain:
                partition.rename(self.runs / str(old))
            link.unlink(missing_ok=True)
            os.symlink(f"{_RUNS}/{run_id}", link)
            os.replace(link, partition)  # the commit: readers see the new files from here on
        except OSError as exc:
            raise BatchOutputError(f"publishing {partition} failed: {exc}") from exc
        self._tidy(run_id, old, journal)

    def finish_interrupted(self) -> None:
        """Finish the publishes that a kill interrupted: a run whose link is in place gets its
        rejects moved and the folder it replaced deleted; a run whose link is not has its
        journal dropped (its folder is its staging still, for its resume); a partition that a
        kill left missing while a plain folder was moved aside gets that folder back."""
        for journal in self.runs.glob(f"*{_JOURNAL}"):
            run_id = journal.name.removesuffix(_JOURNAL)
            try:
                entry = orjson.loads(journal.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                journal.unlink(missing_ok=True)  # half written: the publish never began
                continue
            partition = self.folder / str(entry["partition"])
            old = entry.get("replaces")
            if _linked_run(partition) == run_id:
                self._tidy(run_id, old, journal)
                continue
            if old and not os.path.lexists(partition) and (self.runs / old).is_dir():
                with contextlib.suppress(FileExistsError):
                    os.symlink(f"{_RUNS}/{old}", partition)
            journal.unlink(missing_ok=True)

    def _tidy(self, run_id: str, old: str | None, journal: Path) -> None:
        """After the rename: the run's rejects to ``_rejects/run=<id>``, the folder it
        replaced deleted, its journal dropped."""
        staged = self.runs / run_id / "_rejects"
        with contextlib.suppress(FileNotFoundError):
            if any(staged.iterdir()):
                target = self.folder / "_rejects" / f"run={run_id}"
                target.parent.mkdir(exist_ok=True)
                shutil.rmtree(target, ignore_errors=True)
                staged.rename(target)
            else:
                staged.rmdir()
        if old:
            shutil.rmtree(self.runs / old, ignore_errors=True)
        journal.unlink(missing_ok=True)

    def _partitions(self) -> Iterator[tuple[Path, str]]:
        """Each published partition and the run whose files it shows."""
        for partition in self.folder.glob("input=*"):
            run_id = _linked_run(partition)
            if run_id is not None:
                yield partition, run_id


def _linked_run(partition: Path) -> str | None:
    """The run whose folder the partition links to (None: no link there)."""
    try:
        target = os.readlink(partition)
    except OSError:  # missing, or a plain folder
        return None
    return Path(target).name


def _write_atomically(path: Path, value: object) -> None:
    partial = path.with_name(f"{path.name}.tmp")
    partial.write_bytes(orjson.dumps(value))
    os.replace(partial, path)
