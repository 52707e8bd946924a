"""A comparison worker process: a pickled job on stdin (read and spill batches of
keys that follow it on stdin, digest some work buckets, or diff some), and
``("ok", result)`` or ``("error", exception)`` pickled on stdout. A process of
its own, so the second core works in parallel (threads would share one GIL)."""

from __future__ import annotations

import pickle
import sys

from phasegate.parity.judge import run_job
from phasegate.parity.read import reader_main


def main() -> None:
    stream = sys.stdin.buffer
    reply: tuple[str, object]
    try:
        job = pickle.load(stream)
        reply = ("ok", reader_main(job, stream) if job[0] == "read" else run_job(job))
    except Exception as exc:
        reply = ("error", exc)
    try:
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an error that does not pickle: its text does
        data = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {reply[1]}")))
    sys.stdout.buffer.write(data)


if __name__ == "__main__":
    main()
