"""Batch scoring benchmark: modelrail's run_batch against pandas + scikit-learn and MLflow
pyfunc, one logistic regression, one machine, one invocation.

    .venv/bin/python bench/batch/run.py [--quick] [--only sqlite,postgres,parquet,memory]

1,000,000 rows x 30 float64 features (Parquet) are scored and written as id + prediction +
probability into SQLite, PostgreSQL (127.0.0.1:5432, database test, user postgres) and
Parquet; then modelrail alone scores 10,000,000 rows for its peak memory. Every job runs in a
fresh process that times itself from just before the model is loaded to the end of the write
and reports its peak RSS; the sides alternate and each figure is the median of 3. Results are
printed and written to bench/.work/batch-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _common import (  # noqa: E402
    ROOT,
    changed_files,
    command_line,
    load_average,
    machine,
    source_files,
    source_state,
    write_results,
)

WORK = ROOT / "bench" / ".work"
RESULTS = WORK / "batch-results.json"
PYTHON = {
    "modelrail": ROOT / ".venv" / "bin" / "python",
    "pandas": ROOT / ".venv" / "bin" / "python",
    "mlflow": ROOT / "bench" / ".envs" / "mlflow" / "bin" / "python",
}
WORKER = HERE / "_worker.py"
SETUP = HERE / "_setup.py"
PG_CONNINFO = "postgresql://postgres@127.0.0.1:5432/test"
TABLES = {
    "modelrail": "bench_batch_modelrail",
    "pandas": "bench_batch_pandas",
    "mlflow": "bench_batch_mlflow",
    "preimport": "bench_batch_preimport",
}
SQL_TARGET = 600_000
PARQUET_TARGET = 3_000_000
MEMORY_TARGET_MB = 300.0
SCENARIOS = ("sqlite", "postgres", "parquet", "memory")
LABELS = {
    "pandas": "pandas + sklearn",
    "mlflow": "MLflow pyfunc",
    "preimport": "modelrail, sklearn first",
}
METHOD = (
    "each job is one fresh process; it imports its libraries, then times model loading, "
    "reading the input, scoring and the write (commit included)",
    "modelrail: Client(project) + run_batch(JobSpec(reference='bench-lr:1', inputs=(file,), "
    "id_columns=('id',), output=...)); the clock includes opening the store, checking the "
    "model's sha256, its batch-run record and the input's fingerprint",
    "pandas + sklearn (.venv): pickle.load, pd.read_parquet, predict + predict_proba, "
    "DataFrame(id, prediction, probability).to_sql(engine, index=False, if_exists='replace') "
    "/ .to_parquet(index=False)",
    "MLflow (its own virtualenv): mlflow.pyfunc.load_model(dir).predict(frame) for the class "
    "and .get_raw_model().predict_proba(frame) for the probability, then the same to_sql",
    "PostgreSQL baseline: to_sql(method=psql_insert_copy), the pandas docs' COPY recipe "
    "(psycopg 3's cursor.copy in place of psycopg2's copy_expert)",
    "modelrail writes 4 more columns per row (model, model_version, batch_run_id, scored_at) "
    "and keys the SQL tables on id (PRIMARY KEY); the baselines write 3 columns, no key",
    "fresh output each repeat: a new SQLite file / Parquet path, PostgreSQL tables dropped",
    "peak memory: VmHWM of the child (/proc/self/status); ru_maxrss is recorded too",
    "machine pace: before and after the Parquet jobs, pyarrow alone decodes the same input on "
    "one thread (best of 3, CPU seconds); on a shared VM this drifts by a third over hours",
    "modelrail's bytecode is cached first (python -m compileall src/modelrail), as pip does "
    "when it installs a package; the other sides' libraries are installed packages",
    "'mr, sklearn first': the same modelrail job with scikit-learn and skops imported before "
    "the clock (not judged; it shows what those imports cost modelrail's job)",
)


@dataclass
class Sample:
    seconds: float
    wall: float
    rows: int
    peak_mb: float
    maxrss_mb: float
    imports_mb: float
    cpu_seconds: float = 0.0  # CPU time of all the job's threads within its clock


@dataclass
class Row:
    scenario: str
    rows: int
    competitor: str
    modelrail: list[Sample] = field(default_factory=list)
    other: list[Sample] = field(default_factory=list)
    target: str = ""
    passed: bool | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    preimport: list[Sample] = field(default_factory=list)
    note: str = ""

    @staticmethod
    def rate(samples: list[Sample]) -> float | None:
        if not samples:
            return None
        return statistics.median(s.rows / s.seconds for s in samples)

    @staticmethod
    def peak(samples: list[Sample]) -> float | None:
        return max(s.peak_mb for s in samples) if samples else None

    def summary(self) -> dict[str, Any]:
        mine, theirs = self.rate(self.modelrail), self.rate(self.other)
        return {
            "scenario": self.scenario,
            "rows": self.rows,
            "competitor": self.competitor,
            "modelrail_rows_per_s": mine,
            "competitor_rows_per_s": theirs,
            "ratio": mine / theirs if mine and theirs else None,
            "modelrail_preimport_rows_per_s": self.rate(self.preimport),
            "modelrail_peak_mb": self.peak(self.modelrail),
            "competitor_peak_mb": self.peak(self.other),
            "target": self.target,
            "passed": self.passed,
            "modelrail_samples": [asdict(s) for s in self.modelrail],
            "competitor_samples": [asdict(s) for s in self.other],
            "modelrail_preimport_samples": [asdict(s) for s in self.preimport],
            "note": self.note,
            "checks": self.checks,
        }


notes: list[str] = []


# -- subprocesses ----------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELRAIL_", "MLFLOW_"))}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as for a user: imports use cached bytecode
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def call(cmd: list[str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def byte_compile() -> None:
    """Cache modelrail's bytecode, as pip does for an installed package (the editable
    install here would otherwise compile the modules a job imports inside its clock)."""
    subprocess.run(
        [str(PYTHON["modelrail"]), "-m", "compileall", "-q", str(ROOT / "src" / "modelrail")],
        check=True,
        env=clean_env(),
    )


def setup_step(*args: str, cwd: Path) -> dict[str, Any]:
    return call([str(PYTHON["modelrail"]), str(SETUP), *args], cwd)


def job(
    side: str, sink: str, work: Path, data: Path, output: str, extra: tuple[str, ...] = ()
) -> Sample:
    """One timed job; side ``preimport`` is modelrail with scikit-learn and skops imported
    before the clock (how much of modelrail's time is those imports)."""
    model = {
        "modelrail": work / "modelrail-project",
        "preimport": work / "modelrail-project",
        "pandas": work / "model.pkl",
        "mlflow": work / "mlflow-model",
    }[side]
    worker_side = "modelrail" if side == "preimport" else side
    cmd = [str(PYTHON[worker_side]), str(WORKER), worker_side, sink, "--input", str(data)]
    cmd += ["--model", str(model), "--output", output, "--table", TABLES[side], *extra]
    if side == "preimport":
        cmd.append("--preimport")
    started = time.perf_counter()
    result = call(cmd, work)
    wall = time.perf_counter() - started
    return Sample(
        seconds=result["seconds"],
        wall=wall,
        rows=result["rows"],
        peak_mb=result["vmhwm_mb"],
        maxrss_mb=result["maxrss_mb"],
        imports_mb=result["imports_vmhwm_mb"],
        cpu_seconds=result["cpu_seconds"],
    )


def drop_tables(*names: str) -> None:
    import psycopg

    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            conn.execute(f'DROP TABLE IF EXISTS "{name}_rejects"')


def postgres_version() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_CONNINFO, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return None if row is None else f"PostgreSQL {row[0]}"
    except Exception as exc:
        notes.append(f"PostgreSQL at {PG_CONNINFO} is not reachable: {exc}")
        return None


# -- setup -------------------------------------------------------------------------------------


def ensure_mlflow_env() -> str:
    """bench/.envs/mlflow as bench/tracking.py makes it, plus what batch scoring needs."""
    from importlib.metadata import version

    from tracking import ensure_mlflow
    from tracking import notes as tracking_notes

    sklearn_version = version("scikit-learn")  # not imported: the driver stays small

    name = ensure_mlflow()
    notes.extend(tracking_notes)
    python = str(PYTHON["mlflow"])
    probe = "import sklearn, pandas, pyarrow, sqlalchemy, psycopg; print(sklearn.__version__)"
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
    if found.returncode != 0 or found.stdout.strip() != sklearn_version:
        print("adding scikit-learn, pandas, pyarrow, sqlalchemy, psycopg to the MLflow env ...")
        packages = [f"scikit-learn=={sklearn_version}", "pandas", "pyarrow", "sqlalchemy"]
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", *packages, "psycopg[binary]"],
            check=True,
        )
    return name


VERSIONED = {
    "modelrail": ("modelrail", "pandas", "pyarrow", "scikit-learn", "numpy", "sqlalchemy"),
    "mlflow": ("mlflow", "pandas", "pyarrow", "scikit-learn", "numpy", "sqlalchemy"),
}


def versions() -> dict[str, str]:
    found = {}
    for side, names in VERSIONED.items():
        code = (
            "import importlib.metadata as m, sqlite3, platform\n"
            f"print(', '.join(n + ' ' + m.version(n) for n in {[*names, 'psycopg']!r})"
            " + ', SQLite ' + sqlite3.sqlite_version + ', Python ' + platform.python_version())"
        )
        out = subprocess.run([str(PYTHON[side]), "-c", code], capture_output=True, text=True)
        found[".venv" if side == "modelrail" else "bench/.envs/mlflow"] = out.stdout.strip()
    return found


# -- scenarios ---------------------------------------------------------------------------------


def compare(
    sides: list[str], sink: str, work: Path, data: Path, repeats: int, output: Any
) -> tuple[dict[str, list[Sample]], dict[str, str]]:
    """Alternate the sides ``repeats`` times: each side's samples, and its last output (kept
    for the checks; earlier ones are deleted)."""
    samples: dict[str, list[Sample]] = {side: [] for side in sides}
    last: dict[str, str] = {}
    for repeat in range(repeats):
        order = sides[repeat % len(sides) :] + sides[: repeat % len(sides)]
        for side in order:
            target = output(side, repeat)
            if sink == "postgres":
                drop_tables(TABLES[side])
            sample = job(side, sink, work, data, target)
            samples[side].append(sample)
            print(
                f"  {LABELS.get(side, side):<18} {sample.rows / sample.seconds:>12,.0f} rows/s  "
                f"{sample.seconds:6.2f} s (CPU {sample.cpu_seconds:5.2f} s, "
                f"process {sample.wall:5.2f} s)  "
                f"peak {sample.peak_mb:6.0f} MB",
                flush=True,
            )
            if side in last and sink != "postgres":
                remove(last[side])
            last[side] = target
    return samples, last


def announce(scenario: str) -> None:
    """Print the scenario with the load average, which is noted: the machine may be shared."""
    load = load_average()
    notes.append(f"load average {load} when starting {scenario}")
    print(f"{scenario} (load average {load}) ...", flush=True)


def remove(path: str) -> None:
    target = Path(path)
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm", "-journal"):
            Path(path + suffix).unlink(missing_ok=True)


def verify(row: Row, data: Path, work: Path, rows: int, outputs: dict[str, str]) -> None:
    args = [str(data), str(work / "model.pkl"), str(rows), "2000"]
    result = setup_step("check", *args, *(f"{k}={v}" for k, v in outputs.items()), cwd=work)
    row.checks = result
    for label, entry in result["outputs"].items():
        if not entry["ok"]:
            notes.append(f"CHECK FAILED for {row.scenario}, {label}: {entry}")


def sqlite_rows(work: Path, data: Path, rows: int, repeats: int) -> list[Row]:
    sides = ["modelrail", "pandas", "mlflow", "preimport"]

    def output(side: str, repeat: int) -> str:
        return str(work / f"out-{side}-{repeat}.db")

    announce(f"SQLite, {rows:,} rows: {', '.join(sides)}")
    samples, last = compare(sides, "sqlite", work, data, repeats, output)
    result = []
    for side in ("pandas", "mlflow"):
        row = Row(f"SQLite {rows:,} rows", rows, LABELS[side] + " + to_sql")
        row.target = f">= {SQL_TARGET:,} rows/s"
        row.modelrail, row.other = samples["modelrail"], samples[side]
        row.preimport = samples["preimport"]
        row.passed = (row.rate(row.modelrail) or 0) >= SQL_TARGET
        result.append(row)
    verify(result[0], data, work, rows, {s: f"sqlite:{last[s]}:{TABLES[s]}" for s in sides})
    result[1].checks = result[0].checks
    for path in last.values():
        remove(path)
    return result


def postgres_row(work: Path, data: Path, rows: int, repeats: int) -> Row:
    row = Row(f"PostgreSQL {rows:,} rows", rows, "pandas + sklearn + to_sql COPY")
    row.target = f">= {SQL_TARGET:,} rows/s"
    announce(f"PostgreSQL, {rows:,} rows")
    sides = ["modelrail", "pandas", "preimport"]
    samples, _ = compare(sides, "postgres", work, data, repeats, lambda side, repeat: "")
    row.modelrail, row.other = samples["modelrail"], samples["pandas"]
    row.preimport = samples["preimport"]
    outputs = {side: f"postgres::{TABLES[side]}" for side in sides}
    verify(row, data, work, rows, outputs)
    drop_tables(*TABLES.values())
    row.passed = (row.rate(row.modelrail) or 0) >= SQL_TARGET
    return row


def machine_pace(data: Path, work: Path) -> float:
    seconds = float(setup_step("decode", str(data), cwd=work)["decode_cpu_seconds"])
    print(f"  (pyarrow alone decodes the input in {seconds:.3f} s of CPU on one thread)")
    return seconds


def parquet_row(work: Path, data: Path, rows: int, repeats: int) -> Row:
    row = Row(f"Parquet {rows:,} rows", rows, "pandas + sklearn + to_parquet")
    row.target = f">= {PARQUET_TARGET:,} rows/s"

    def output(side: str, repeat: int) -> str:
        name = f"out-{side}-{repeat}"
        return str(work / (name + ".parquet" if side == "pandas" else name))

    announce(f"Parquet, {rows:,} rows")
    sides = ["modelrail", "pandas", "preimport"]
    before = machine_pace(data, work)
    samples, last = compare(sides, "parquet", work, data, repeats, output)
    pace = [before, machine_pace(data, work)]
    row.modelrail, row.other = samples["modelrail"], samples["pandas"]
    row.preimport = samples["preimport"]
    verify(row, data, work, rows, {side: f"parquet:{path}" for side, path in last.items()})
    row.checks["pyarrow_decode_cpu_seconds"] = pace
    for path in last.values():
        remove(path)
    row.passed = (row.rate(row.modelrail) or 0) >= PARQUET_TARGET
    return row


def memory_rows(
    work: Path, big: Path, rows: int, variants: list[tuple[str, int | None]]
) -> list[Row]:
    """modelrail alone on the big input, once per (sink, batch_rows or the default)."""
    result = []
    for sink, batch_rows in variants:
        label = {"parquet": "Parquet", "sqlite": "SQLite", "postgres": "PostgreSQL"}[sink]
        row = Row(f"memory: {label} {rows:,} rows", rows, "")
        row.target = f"peak < {MEMORY_TARGET_MB:.0f} MB"
        extra: tuple[str, ...] = ()
        if batch_rows:
            row.note = f"batch_rows={batch_rows:,}"
            row.scenario += f" ({row.note})"
            extra = ("--batch-rows", str(batch_rows))
        announce(f"memory: modelrail, {rows:,} rows into {label} {row.note}".rstrip())
        output = {"parquet": str(work / "big-out"), "sqlite": str(work / "big-out.db")}.get(
            sink, ""
        )
        if sink == "postgres":
            drop_tables(TABLES["modelrail"])
        sample = job("modelrail", sink, work, big, output, extra)
        print(
            f"  modelrail          {sample.rows / sample.seconds:>12,.0f} rows/s  "
            f"{sample.seconds:6.2f} s  peak {sample.peak_mb:6.0f} MB "
            f"(ru_maxrss {sample.maxrss_mb:.0f} MB)",
            flush=True,
        )
        row.modelrail.append(sample)
        where = output if sink == "parquet" else f"{output}:{TABLES['modelrail']}"
        verify(row, big, work, rows, {"modelrail": f"{sink}:{where}"})
        if sink == "postgres":
            drop_tables(TABLES["modelrail"])
        else:
            remove(output)
        row.passed = sample.peak_mb < MEMORY_TARGET_MB and sample.rows == rows
        result.append(row)
    return result


# -- profiling ---------------------------------------------------------------------------------


STAGES = {
    "run_batch (whole job, main thread)": ("batch/runner.py", "run_batch"),
    "load the model (sha256 check + skops load)": ("modelrail/registry.py", "load_model_version"),
    "compile + verify the linear form": ("scoring/predictor.py", "__init__"),
    "read Parquet (reader thread)": ("batch/sources.py", "_read"),
    "score batches (scorer thread)": ("batch/scorer.py", "score"),
    "write batches (main thread)": ("batch/sinks/", "write"),
    "commit (main thread)": ("batch/sinks/", "commit"),
    "fingerprint the input (own thread)": ("batch/sources.py", "_hash"),
    "waiting for the previous stage (scorer and main threads)": ("queue.py", "get"),
    "imports inside the clock (scikit-learn, skops, ...)": (
        "importlib._bootstrap>",
        "_find_and_load",
    ),
}


def profile(sink: str, work: Path, data: Path, output: str) -> dict[str, Any]:
    """cProfile every thread of one modelrail job: the top 10 functions by own time (lock
    waits apart) and the cumulative time of the job's stages."""
    folder = work / f"profile-{sink}"
    if sink == "postgres":
        drop_tables(TABLES["modelrail"])
    sample = job("modelrail", sink, work, data, output, ("--profile", str(folder)))
    remove(output)
    if sink == "postgres":
        drop_tables(TABLES["modelrail"])
    files = sorted(folder.glob("*.prof"))
    stats = pstats.Stats(str(files[0]))
    for path in files[1:]:
        stats.add(str(path))
    entries = []
    waits = 0.0
    stages: dict[str, float] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        for stage, (where, function) in STAGES.items():
            if where in filename and name == function:
                stages[stage] = round(stages.get(stage, 0.0) + cumtime, 3)
        if "_thread.lock" in name and "acquire" in name:
            waits += tottime  # threads waiting: on the queue, the heartbeat's timer
            continue
        shown = filename.split("site-packages/")[-1].split("/src/")[-1].split("/lib/python3")[-1]
        entries.append(
            {
                "function": f"{shown}:{line}({name})",
                "calls": calls,
                "tottime": round(tottime, 3),
                "cumtime": round(cumtime, 3),
            }
        )
    entries.sort(key=lambda e: -e["tottime"])
    return {
        "scenario": sink,
        "seconds_under_profile": round(sample.seconds, 3),
        "threads": [p.stem.removeprefix("thread-") for p in files],
        "lock_wait_seconds": round(waits, 3),
        "stages": {stage: stages[stage] for stage in STAGES if stage in stages},
        "top_by_tottime": entries[:10],
    }


# -- report ------------------------------------------------------------------------------------


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "ratio":
        return f"{value:.2f}x"
    return f"{value:,.0f}"


def table(rows: list[Row]) -> str:
    width = max(len(row.scenario) for row in rows) if rows else 10
    head = (
        f"{'scenario':<{width}} {'modelrail rows/s':>16} {'competitor':<32} {'rows/s':>11} "
        f"{'ratio':>7}  {'target':<22} {'result':<6} {'mr MB':>6} {'comp MB':>7} "
        f"{'mr, sklearn first':>17}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        s = row.summary()
        verdict = {True: "PASS", False: "MISS", None: ""}[row.passed]
        lines.append(
            f"{row.scenario:<{width}} {fmt(s['modelrail_rows_per_s'], 'rate'):>16} "
            f"{row.competitor or '-':<32} {fmt(s['competitor_rows_per_s'], 'rate'):>11} "
            f"{fmt(s['ratio'], 'ratio'):>7}  {row.target:<22} {verdict:<6} "
            f"{fmt(s['modelrail_peak_mb'], 'mb'):>6} {fmt(s['competitor_peak_mb'], 'mb'):>7} "
            f"{fmt(s['modelrail_preimport_rows_per_s'], 'rate'):>17}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 / 1,000,000 rows, 1 repeat")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument("--no-profile", action="store_true", help="skip profiling a MISS")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    if unknown := set(only) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    rows, big_rows, repeats = (200_000, 1_000_000, 1) if args.quick else (1_000_000, 10_000_000, 3)
    started = time.perf_counter()
    files = source_files()
    info = machine() | {"source": source_state(files)}
    print(f"load average {info['load']} before the run", flush=True)
    mlflow = ensure_mlflow_env()
    byte_compile()
    pg = postgres_version() if "postgres" in only else None
    notes.extend(METHOD)
    results: list[Row] = []
    profiles: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelrail-batch-bench-") as tmp:
        work = Path(tmp)
        data = work / "input-1m.parquet"
        print(f"generating {rows:,} rows ...", flush=True)
        info["input"] = json.dumps(setup_step("generate", str(data), str(rows), "0", cwd=work))
        print("training the model, registering it in modelrail and MLflow ...", flush=True)
        trained = setup_step("train", str(work), str(data), cwd=work)
        export = [str(PYTHON["mlflow"]), str(WORKER), "export-mlflow", str(work / "model.pkl")]
        call([*export, str(work / "example.parquet"), str(work / "mlflow-model")], work)
        if "sqlite" in only:
            results.extend(sqlite_rows(work, data, rows, repeats))
        if "postgres" in only and pg is not None:
            results.append(postgres_row(work, data, rows, repeats))
        if "parquet" in only:
            results.append(parquet_row(work, data, rows, repeats))
        if "memory" in only:
            big = work / "input-big.parquet"
            print(f"generating {big_rows:,} rows ...", flush=True)
            info["big_input"] = json.dumps(
                setup_step("generate", str(big), str(big_rows), "10", cwd=work)
            )
            variants: list[tuple[str, int | None]] = [
                ("parquet", None),
                ("sqlite", None),
                ("postgres", None),
            ]
            results.extend(memory_rows(work, big, big_rows, variants))
            big.unlink()
        missed = {r.scenario.split()[0].lower() for r in results if r.passed is False}
        if not args.no_profile:
            for sink in ("sqlite", "postgresql", "parquet"):
                if sink in missed:
                    print(f"profiling modelrail's {sink} job ...", flush=True)
                    name = "postgres" if sink == "postgresql" else sink
                    output = str(work / ("profile-out.db" if sink == "sqlite" else "profile-out"))
                    profiles.append(profile(name, work, data, output))
    info["load_after"] = load_average()
    elapsed = time.perf_counter() - started
    if changed := changed_files(files, source_files()):
        notes.append(f"src changed during the run: {', '.join(changed)}")
    notes.append(f"whole benchmark took {elapsed / 60:.1f} min")
    found_versions = versions()
    text = table(results)
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}")
    print(f"load average {info['load']} before, {info['load_after']} after")
    print(f"command: {command_line()}")
    print(f"source: {info['source']}")
    for where, listed in found_versions.items():
        print(f"{where}: {listed}")
    print(f"{mlflow}; {pg or 'no PostgreSQL'}; model: {trained}\n")
    print(text)
    pandas_peaks = [r.peak(r.other) or 0 for r in results if r.competitor.startswith("pandas")]
    if pandas_peaks:
        print(f"\npandas baseline peak on {rows:,} rows: {max(pandas_peaks):,.0f} MB")
    for row in results:
        if pace := row.checks.get("pyarrow_decode_cpu_seconds"):
            print(
                f"machine pace: pyarrow alone decoded the {row.rows:,}-row input in "
                f"{pace[0]:.3f} s of CPU before the Parquet jobs, {pace[1]:.3f} s after"
            )
    print("\nchecks:")
    shown: list[dict[str, Any]] = []
    for row in results:
        if any(row.checks is seen for seen in shown):
            continue  # the two SQLite rows share one check
        shown.append(row.checks)
        for label, entry in row.checks.get("outputs", {}).items():
            print(
                f"  {row.scenario} / {label}: rows {entry['rows']:,} "
                f"({'ok' if entry['rows_ok'] else 'WRONG'}), sample of {row.checks['sample']}: "
                f"{entry['prediction_mismatches']} prediction mismatches, max |p - sklearn| "
                f"{entry['max_probability_diff_vs_sklearn']:.1e}"
                + (
                    f", max |p - modelrail| {entry['max_probability_diff_vs_first']:.1e}"
                    if "max_probability_diff_vs_first" in entry
                    else ""
                )
            )
    for found in profiles:
        print(
            f"\nprofile of modelrail's {found['scenario']} job ({found['seconds_under_profile']} s "
            f"under cProfile, threads {', '.join(found['threads'])}):"
        )
        for stage, seconds in found["stages"].items():
            print(f"  {seconds:7.3f} s  {stage}")
        print(f"  top 10 by own time ({found['lock_wait_seconds']} s of lock waits left out):")
        for entry in found["top_by_tottime"]:
            print(
                f"  {entry['tottime']:7.3f} s own {entry['cumtime']:7.3f} s cum "
                f"{entry['calls']:>9} calls  {entry['function']}"
            )
    print("\nnotes:")
    for note in notes:
        print(f"  - {note}")
    document = {
        "command": command_line(),
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": info,
        "versions": found_versions | {"mlflow": mlflow, "postgres": pg},
        "model": trained,
        "repeats": repeats,
        "rows": [row.summary() for row in results],
        "profiles": profiles,
        "notes": notes,
        "seconds": elapsed,
    }
    write_results(RESULTS, document)
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
