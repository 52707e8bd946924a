"""Worker processes for the reader, digest, diff and load jobs: each job in a child
of its own (:mod:`~phasegate.parity.compare_worker`, forked by :mod:`.forks`), all
started at once, so the second core works in parallel (threads would share one GIL).

A caller that stops waiting (the backfill's load failed, Ctrl-C) kills them:
they are not left decoding the rest of a keyspace nobody will load.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from typing import IO, Any

from phasegate.parity import forks
from phasegate.parity.judge import answer


class Worker:
    """One child: fed pickled items on its stdin (a pipe), its answer and its
    errors in files of its own, read once it ended."""

    def __init__(self, program: forks.Program = forks.WORKER) -> None:
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close)
        self.err = tempfile.TemporaryFile()  # noqa: SIM115
        self.stdin: IO[bytes] | None = None
        read_end, write_end = os.pipe()
        try:
            self.proc = forks.start(program, read_end, self.out.fileno(), self.err.fileno())
        except BaseException:
            os.close(write_end)
            self.close()
            raise
        finally:
            os.close(read_end)
        self.stdin = open(write_end, "wb")  # noqa: SIM115

    def send(self, item: object) -> bool:
        """Pickle ``item`` to it; False when it has stopped reading (it ended: its
        answer says why)."""
        assert self.stdin is not None
        try:
            pickle.dump(item, self.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError:
            return False
        return True

    def end_input(self) -> None:
        if self.stdin is not None:
            with contextlib.suppress(OSError):
                self.stdin.close()
            self.stdin = None

    def answer(self) -> Any:
        """Close its input, wait, and take its answer (its error raised here)."""
        self.end_input()
        code = self.proc.wait()
        self.out.seek(0)
        self.err.seek(0)
        out, err = self.out.read(), self.err.read()
        self.close()
        return answer(code, out, err)

    def kill(self) -> None:
        """Stop it at once, if it still runs."""
        self.proc.kill()
        self.proc.wait()
        self.close()

    def close(self) -> None:
        self.end_input()
        self.out.close()
        self.err.close()


class Workers:
    """The jobs' processes; ``close`` (as ``contextlib.closing``) kills any still running."""

    def __init__(self, jobs: list[tuple[Any, ...]], program: forks.Program = forks.WORKER) -> None:
        self.workers: list[Worker] = []
        try:
            for job in jobs:
                worker = Worker(program)
                self.workers.append(worker)
                worker.send(job)
                worker.end_input()
        except BaseException:
            self.close()
            raise

    def done(self) -> bool:
        """Whether every worker has ended (answered or failed)."""
        return all(w.proc.poll() is not None for w in self.workers)

    def results(self) -> list[Any]:
        """Every worker's answer, in job order, once all have ended; the first
        worker's error is raised here as it was raised there."""
        for worker in self.workers:
            worker.proc.wait()
        try:
            return [worker.answer() for worker in self.workers]
        finally:
            self.close()

    def close(self) -> None:
        """Kill every worker still running, and close the files of all."""
        for worker in self.workers:
            worker.kill()


def run_jobs(jobs: list[tuple[Any, ...]]) -> list[Any]:
    """Each job in a child process of its own, all at once; their answers in order."""
    with contextlib.closing(Workers(jobs)) as workers:
        return workers.results()
