"""``modelrail server`` under cProfile in every thread, for bench/tracking.py's server scenario.

    .venv/bin/python bench/_server_profile.py OUT.prof server --store ... --port ...

cProfile alone sees only the thread that started it, and the server does its store work in
Starlette's worker threads; here each new thread starts its own profiler
(``threading.setprofile``). When the server stops (SIGTERM, as uvicorn handles it), the
statistics of the main thread and of every worker thread are merged into OUT.prof (pstats).
uvicorn raises the signal again once it has shut down, so SIGTERM is made a ``SystemExit``
here first: the statistics are written before the process ends.
"""

from __future__ import annotations

import cProfile
import marshal
import pstats
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

profilers: list[cProfile.Profile] = []
lock = threading.Lock()


def start_in_thread(frame: Any, event: str, arg: Any) -> None:
    """The first profile event of a new thread: replace this hook by a profiler of its own."""
    profiler = cProfile.Profile()
    with lock:
        profilers.append(profiler)
    profiler.enable()


def merged(out: Path) -> None:
    """Every profiler's statistics into ``out``; the threads' profilers stay enabled (a
    profiler can only be disabled from its own thread), so they are read as they stand."""
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        files = []
        with lock:
            found = list(profilers)
        for number, profiler in enumerate(found):
            profiler.snapshot_stats()
            path = Path(tmp) / f"{number}.prof"
            path.write_bytes(marshal.dumps(profiler.stats))
            files.append(str(path))
        pstats.Stats(*files).dump_stats(str(out))


def stopped(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[2] != "server":
        raise SystemExit("usage: _server_profile.py OUT.prof server [modelrail server options]")
    out = Path(sys.argv[1])
    sys.argv = ["modelrail", *sys.argv[2:]]
    from modelrail.cli.main import run

    signal.signal(signal.SIGTERM, stopped)
    main_thread = cProfile.Profile()
    profilers.append(main_thread)
    threading.setprofile(start_in_thread)
    main_thread.enable()
    try:
        run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        main_thread.disable()
        threading.setprofile(None)
        merged(out)


if __name__ == "__main__":
    main()
