"""Batch scoring by model family (issue 16, item 4): modelrail's run_batch against pandas +
the model's own library, into SQLite and PostgreSQL, one machine, one invocation.

    .venv/bin/python bench/batch/families.py [--quick] [--families forest,hgb,...]
        [--only sqlite,postgres,memory] [--rows N] [--memory-rows N]

Five families, each trained on 10,000 rows of its input with the library's defaults and a
fixed seed, fitted on a DataFrame, pickled and registered in one fresh modelrail project:
a 100-tree random forest, HistGradientBoosting, XGBoost (100 trees) and LightGBM (100 trees)
on 30 float64 features with 2% of five columns missing, and a ColumnTransformer (one-hot text
+ scaled numbers) + LogisticRegression on 6 numbers and 2 text columns. For each family,
1,000,000 rows are scored as id + prediction + probability into SQLite (modelrail against
pandas + the library + to_sql) and PostgreSQL (against the same + COPY); then modelrail alone
scores 10,000,000 rows for its peak memory. Before any timing, every side scores a small
input into each database and its rows are compared with the library's own predictions.
Every job is a fresh process timed from just before the model is loaded to the committed
write; the sides alternate and each figure is the median of the repeats. Results are
printed and written to bench/.work/batch-families.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import run as bench  # the batch benchmark's helpers (this folder is on sys.path)
from _common import (
    ROOT,
    changed_files,
    command_line,
    load_average,
    machine,
    source_files,
    write_results,
)
from _common import source_state as digest_of_source
from _family_report import document, profile_summary, report

HERE = Path(__file__).resolve().parent
PYTHON = str(bench.PYTHON["modelrail"])
WORKER = str(HERE / "_family_worker.py")
SETUP = str(HERE / "_family_setup.py")
RESULTS = bench.WORK / "batch-families.json"
FAMILIES = ("forest", "hgb", "xgboost", "lightgbm", "pipeline")
LABELS = {
    "forest": "random forest, 100 trees",
    "hgb": "HistGradientBoosting",
    "xgboost": "XGBoost, 100 trees",
    "lightgbm": "LightGBM, 100 trees",
    "pipeline": "ColumnTransformer + logistic (text)",
}
SIDES = ("modelrail", "pandas")
SINKS = ("sqlite", "postgres")
SCENARIOS = (*SINKS, "memory")
SINK_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
COMPETITORS = {"sqlite": "pandas + library + to_sql", "postgres": "pandas + library + COPY"}
RATIO_TARGET = 2.0
MEMORY_TARGET_MB = 300.0
CHECK_ROWS = 2_000  # the input every side scores, and is checked on, before any timing
SAMPLE = 2_000  # ids of each timed output compared with the library afterwards
METHOD = (
    "each job is one fresh process (.venv's Python for both sides); it imports its "
    "libraries, then times model loading, reading the input, scoring and the write (commit "
    "included)",
    "modelrail: Client(project) + run_batch(JobSpec(reference='bench-FAMILY:1', "
    "inputs=(file,), id_columns=('id',), output=..., table=...)), default settings; it scores "
    "with the predictor form chosen for batches when the version was registered (listed "
    "under 'models'); the clock includes opening the store, checking the artifacts' sha256, "
    "the batch-run record and the input's fingerprint",
    "pandas + library: pickle.load, pd.read_parquet, one predict_proba on the DataFrame of the "
    "model's columns, the class as classes_[argmax] (what predict computes, without scoring "
    "twice), then DataFrame(id, prediction, probability).to_sql(engine, index=False, "
    "if_exists='replace'); into PostgreSQL with method=psql_insert_copy, the pandas docs' "
    "COPY recipe for psycopg 3 (bench/batch/_worker.py)",
    "modelrail writes 4 more columns per row (model, model_version, batch_run_id, scored_at) "
    "and keys its tables on id (PRIMARY KEY); pandas writes 3 columns, no key",
    "fresh output each job: a new SQLite file, PostgreSQL tables dropped",
    "checks: before timing, each side scores a 2,000-row input into each database and every "
    "row is compared with the pickled model's predict / predict_proba; after timing, the "
    "last output of each side has its row count and 2,000 ids checked the same way; "
    "classes must be identical and probabilities within 1e-6 (the tolerance of modelrail's "
    "verified forms)",
    "peak memory: VmHWM of the child (/proc/self/status); ru_maxrss is recorded too",
    "modelrail's bytecode is cached first (python -m compileall src/modelrail)",
)
# run.py's stages of a modelrail job, and those of the families' predictors.
STAGES = bench.STAGES | {
    "load the batch form (onnxruntime / treelite)": ("scoring/forms/runtimes.py", "load_form"),
    "score with the form": ("scoring/forms/runtimes.py", "scores"),
    "score with the library (model, or rows a form leaves to it)": (
        "scoring/evaluation.py",
        "scores",
    ),
    "input batch to pandas (text columns)": ("pyarrow/", "to_pandas"),
}


@dataclass
class FamilyRow:
    family: str
    scenario: str  # "sqlite", "postgres" or "memory:SINK"
    rows: int
    modelrail: list[bench.Sample] = field(default_factory=list)
    pandas: list[bench.Sample] = field(default_factory=list)
    passed: bool | None = None
    checks: dict[str, Any] = field(default_factory=dict)

    def rate(self, side: str) -> float | None:
        samples = getattr(self, side)
        return statistics.median(s.rows / s.seconds for s in samples) if samples else None

    def peak(self, side: str) -> float | None:
        samples = getattr(self, side)
        return max(s.peak_mb for s in samples) if samples else None

    def ratio(self) -> float | None:
        mine, theirs = self.rate("modelrail"), self.rate("pandas")
        return mine / theirs if mine and theirs else None

    def summary(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "scenario": self.scenario,
            "rows": self.rows,
            "modelrail_rows_per_s": self.rate("modelrail"),
            "pandas_rows_per_s": self.rate("pandas"),
            "ratio": self.ratio(),
            "modelrail_peak_mb": self.peak("modelrail"),
            "pandas_peak_mb": self.peak("pandas"),
            "passed": self.passed,
            "modelrail_samples": [asdict(s) for s in self.modelrail],
            "pandas_samples": [asdict(s) for s in self.pandas],
            "checks": self.checks,
        }


# -- jobs --------------------------------------------------------------------------------


def table_name(family: str, side: str) -> str:
    return f"bench_family_{family}_{side}"


def job(side: str, sink: str, family: str, work: Path, data: Path, output: str) -> bench.Sample:
    model = work / "modelrail-project" if side == "modelrail" else work / f"{family}.pkl"
    if sink == "postgres":
        bench.drop_tables(table_name(family, side))
    cmd = [PYTHON, WORKER, side, sink, "--family", family, "--input", str(data)]
    cmd += ["--model", str(model), "--output", output, "--table", table_name(family, side)]
    started = time.perf_counter()
    result = bench.call(cmd, work)
    return bench.Sample(
        seconds=result["seconds"],
        wall=time.perf_counter() - started,
        rows=result["rows"],
        peak_mb=result["vmhwm_mb"],
        maxrss_mb=result["maxrss_mb"],
        imports_mb=result["imports_vmhwm_mb"],
        cpu_seconds=result["cpu_seconds"],
    )


def where(sink: str, output: str, family: str, side: str) -> str:
    """The check's LABEL=KIND:WHERE:TABLE for one output."""
    return f"{side}={sink}:{output if sink == 'sqlite' else ''}:{table_name(family, side)}"


def check(
    title: str, family: str, data: Path, work: Path, rows: int, sample: int, outputs: list[str]
) -> Any:
    args = [str(data), str(work / f"{family}.pkl"), str(rows), str(sample), *outputs]
    result = bench.call([PYTHON, SETUP, "check", *args], work)
    for label, entry in result["outputs"].items():
        if not entry["ok"]:
            bench.notes.append(f"CHECK FAILED for {family}, {title}, {label}: {entry}")
            print(f"    CHECK FAILED for {label}: {entry}", flush=True)
    return result


def precheck(family: str, sinks: list[str], work: Path, data: Path) -> dict[str, Any]:
    """Every side scores the small input into each database; every row is checked."""
    found = {}
    for sink in sinks:
        outputs = []
        for side in SIDES:
            output = str(work / f"check-{family}-{side}.db")
            job(side, sink, family, work, data, output)
            outputs.append(where(sink, output, family, side))
        found[sink] = check(
            f"{sink} before timing", family, data, work, CHECK_ROWS, CHECK_ROWS, outputs
        )
        for side in SIDES:
            bench.remove(str(work / f"check-{family}-{side}.db"))
        if sink == "postgres":
            bench.drop_tables(*(table_name(family, side) for side in SIDES))
    return found


def report_line(side: str, sample: bench.Sample) -> None:
    print(
        f"    {side:<10} {sample.rows / sample.seconds:>12,.0f} rows/s  {sample.seconds:7.2f} s "
        f"(CPU {sample.cpu_seconds:6.2f} s, process {sample.wall:6.2f} s)  "
        f"peak {sample.peak_mb:6.0f} MB",
        flush=True,
    )


def compare(
    family: str, sink: str, work: Path, data: Path, rows: int, repeats: int, ok: bool
) -> FamilyRow:
    row = FamilyRow(family, sink, rows)
    bench.announce(f"{LABELS[family]}: {SINK_NAMES[sink]}, {rows:,} rows")
    last: dict[str, str] = {}
    for repeat in range(repeats):
        for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:
            output = str(work / f"out-{family}-{side}-{repeat}.db") if sink == "sqlite" else ""
            sample = job(side, sink, family, work, data, output)
            getattr(row, side).append(sample)
            report_line(side, sample)
            if side in last and sink == "sqlite":
                bench.remove(last[side])
            last[side] = output
    outputs = [where(sink, last[side], family, side) for side in SIDES]
    row.checks = check(f"{sink} timed", family, data, work, rows, SAMPLE, outputs)
    for output in last.values():
        if output:
            bench.remove(output)
    if sink == "postgres":
        bench.drop_tables(*(table_name(family, side) for side in SIDES))
    correct = ok and all(e["ok"] for e in row.checks["outputs"].values())
    row.passed = correct and (row.ratio() or 0.0) >= RATIO_TARGET
    return row


def memory_row(family: str, sink: str, work: Path, big: Path, rows: int) -> FamilyRow:
    row = FamilyRow(family, f"memory:{sink}", rows)
    bench.announce(f"{LABELS[family]}: memory, modelrail alone, {rows:,} rows into {sink}")
    output = str(work / f"big-{family}.db") if sink == "sqlite" else ""
    sample = job("modelrail", sink, family, work, big, output)
    row.modelrail.append(sample)
    report_line("modelrail", sample)
    outputs = [where(sink, output, family, "modelrail")]
    row.checks = check(f"memory into {sink}", family, big, work, rows, SAMPLE, outputs)
    if output:
        bench.remove(output)
    else:
        bench.drop_tables(table_name(family, "modelrail"))
    correct = all(e["ok"] for e in row.checks["outputs"].values())
    row.passed = correct and sample.peak_mb < MEMORY_TARGET_MB
    return row


def profile(family: str, sink: str, work: Path, data: Path) -> dict[str, Any]:
    """cProfile every thread of one modelrail job (run.py's way), summarised."""
    folder = work / f"profile-{family}-{sink}"
    output = str(work / "profile-out.db") if sink == "sqlite" else ""
    table = table_name(family, "modelrail")
    if sink == "postgres":
        bench.drop_tables(table)
    cmd = [PYTHON, WORKER, "modelrail", sink, "--family", family, "--input", str(data)]
    cmd += ["--model", str(work / "modelrail-project"), "--output", output, "--table", table]
    result = bench.call([*cmd, "--profile", str(folder)], work)
    if output:
        bench.remove(output)
    else:
        bench.drop_tables(table)
    return {"family": family, "scenario": sink, "seconds_under_profile": result["seconds"]} | (
        profile_summary(folder, STAGES)
    )


# -- the run -----------------------------------------------------------------------------


def setup(*args: str, cwd: Path) -> dict[str, Any]:
    return bench.call([PYTHON, SETUP, *args], cwd)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 / 1,000,000 rows, 1 repeat")
    parser.add_argument("--families", default="", help="comma-separated: " + ",".join(FAMILIES))
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument("--rows", type=int, default=0, help="rows per timed job (1,000,000)")
    parser.add_argument("--memory-rows", type=int, default=0, help="rows for memory (10,000,000)")
    parser.add_argument("--memory-sinks", default="sqlite", help="comma-separated: sqlite,postgres")
    parser.add_argument("--repeats", type=int, default=0, help="jobs per side (3; 1 with --quick)")
    parser.add_argument(
        "--no-missing", action="store_true", help="no missing values in the numeric inputs"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip profiling a MISS")
    args = parser.parse_args()
    for name, allowed in (("families", FAMILIES), ("only", SCENARIOS), ("memory_sinks", SINKS)):
        chosen = [s for s in getattr(args, name).split(",") if s] or list(allowed)
        if unknown := set(chosen) - set(allowed):
            parser.error(f"unknown --{name.replace('_', '-')}: {', '.join(sorted(unknown))}")
        setattr(args, name, [s for s in allowed if s in chosen])
    quick = args.quick
    args.rows = args.rows or (200_000 if quick else 1_000_000)
    args.memory_rows = args.memory_rows or (1_000_000 if quick else 10_000_000)
    args.repeats = args.repeats or (1 if quick else 3)
    return args


def main() -> None:
    args = parse()
    started = time.perf_counter()
    files = source_files()
    info: dict[str, Any] = machine() | {"source": digest_of_source(files)}
    print(f"load average {info['load']} before the run", flush=True)
    bench.byte_compile()
    sinks = [s for s in SINKS if s in args.only]
    if "postgres" in args.only or "postgres" in args.memory_sinks:
        info["postgres"] = bench.postgres_version()
        if info["postgres"] is None:
            sinks = [s for s in sinks if s != "postgres"]
            args.memory_sinks = [s for s in args.memory_sinks if s != "postgres"]
    numbers = "numbers" if args.no_missing else "gaps"
    kinds = {f: "text" if f == "pipeline" else numbers for f in args.families}
    bench.notes.extend(METHOD)
    rows: list[FamilyRow] = []
    profiles: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelrail-batch-families-") as tmp:
        work = Path(tmp)
        inputs, checks, generated = {}, {}, {}
        for kind in dict.fromkeys(kinds.values()):
            inputs[kind], checks[kind] = work / f"{kind}.parquet", work / f"{kind}-check.parquet"
            print(f"generating {args.rows:,} rows ({kind}) ...", flush=True)
            generated[kind] = setup(
                "generate", kind, str(inputs[kind]), str(args.rows), "0", cwd=work
            )
            setup("generate", kind, str(checks[kind]), str(CHECK_ROWS), "5", cwd=work)
        print("training, pickling and registering the models ...", flush=True)
        pairs = [f"{f}={inputs[kind]}" for f, kind in kinds.items()]
        models = setup("train", str(work), *pairs, cwd=work)
        for family in args.families:
            prechecked = precheck(family, sinks, work, checks[kinds[family]]) if sinks else {}
            models[family]["prechecks"] = prechecked
            ok = all(e["ok"] for r in prechecked.values() for e in r["outputs"].values())
            for sink in sinks:
                row = compare(
                    family, sink, work, inputs[kinds[family]], args.rows, args.repeats, ok
                )
                rows.append(row)
                if row.passed is False and not args.no_profile:
                    print(f"  profiling modelrail's {sink} job ...", flush=True)
                    profiles.append(profile(family, sink, work, inputs[kinds[family]]))
        if "memory" in args.only:
            for kind in dict.fromkeys(kinds.values()):
                big = work / f"{kind}-big.parquet"
                print(f"generating {args.memory_rows:,} rows ({kind}) ...", flush=True)
                generated[f"{kind}-big"] = setup(
                    "generate", kind, str(big), str(args.memory_rows), "10", cwd=work
                )
                for family in (f for f in args.families if kinds[f] == kind):
                    for sink in args.memory_sinks:
                        rows.append(memory_row(family, sink, work, big, args.memory_rows))
                big.unlink()
    info["load_after"] = load_average()
    if changed := changed_files(files, source_files()):
        bench.notes.append(f"src changed during the run: {', '.join(changed)}")
    elapsed = time.perf_counter() - started
    bench.notes.append(f"whole benchmark took {elapsed / 60:.1f} min")
    found = document(args, info, models, generated, [r.summary() for r in rows], profiles)
    found |= {"command": command_line(), "notes": bench.notes, "seconds": elapsed}
    print(report(found, LABELS, SINK_NAMES, COMPETITORS, RATIO_TARGET, MEMORY_TARGET_MB))
    write_results(RESULTS, found)
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
