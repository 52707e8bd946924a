"""A comparison worker process: a pickled job on stdin (digest some work buckets,
or diff some), its pickled tallies on stdout. A process of its own, so the
second core decodes in parallel (threads would share one GIL)."""

from __future__ import annotations

import pickle
import sys

from phasegate.parity.judge import run_job


def main() -> None:
    job = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(run_job(job)))


if __name__ == "__main__":
    main()
