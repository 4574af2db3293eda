"""``python -m modelrail.serving.worker FD OPTIONS``: one worker of ``serve --workers N``."""

from __future__ import annotations

import sys

from modelrail.serving.server import worker_main

if __name__ == "__main__":
    worker_main(sys.argv[1:])
