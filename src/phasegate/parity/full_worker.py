"""A full-diff worker process: pickled (bucket paths, types, allow-list) on stdin,
pickled totals per type on stdout. A process of its own, so the second core
decodes in parallel (threads would share one GIL)."""

from __future__ import annotations

import pickle
import sys

from phasegate.parity.full import compare_buckets


def main() -> None:
    paths, types, allow = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(compare_buckets(paths, types, allow)))


if __name__ == "__main__":
    main()
