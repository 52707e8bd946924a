"""A comparison worker process: pickled (bucket paths, types, scope) on stdin,
pickled tallies per type on stdout. A process of its own, so the second core
decodes in parallel (threads would share one GIL)."""

from __future__ import annotations

import pickle
import sys

from phasegate.parity.compare import compare_buckets


def main() -> None:
    paths, types, scope = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(compare_buckets(paths, types, scope)))


if __name__ == "__main__":
    main()
