"""Worker processes for the digest, diff and load jobs: each job in a child of its
own (:mod:`~phasegate.parity.compare_worker`, forked by :mod:`.forks`), all started
at once, so the second core works in parallel (threads would share one GIL).

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


class Workers:
    """The jobs' processes; ``close`` (as ``contextlib.closing``) kills any still running."""

    def __init__(self, jobs: list[tuple[Any, ...]], program: forks.Program = forks.WORKER) -> None:
        self.procs: list[forks.Child] = []
        self.files: list[tuple[IO[bytes], IO[bytes]]] = []
        try:
            for job in jobs:
                out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close)
                err = tempfile.TemporaryFile()  # noqa: SIM115
                self.files.append((out, err))
                read_end, write_end = os.pipe()
                try:
                    self.procs.append(forks.start(program, read_end, out.fileno(), err.fileno()))
                finally:
                    os.close(read_end)
                # A child that ends before reading its job: its answer says why.
                with contextlib.suppress(BrokenPipeError), open(write_end, "wb") as stdin:
                    stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        except BaseException:
            self.close()
            raise

    def done(self) -> bool:
        """Whether every worker has ended (answered or failed)."""
        return all(proc.poll() is not None for proc in self.procs)

    def results(self) -> list[Any]:
        """Every worker's answer, in job order, once all have ended; the first
        worker's error is raised here as it was raised there."""
        codes = [proc.wait() for proc in self.procs]
        answers = []
        for code, (out, err) in zip(codes, self.files, strict=True):
            out.seek(0)
            err.seek(0)
            answers.append((code, out.read(), err.read()))
        self.close()
        return [answer(*each) for each in answers]

    def close(self) -> None:
        """Kill every worker still running, and close the files of all."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait()
        for out, err in self.files:
            out.close()
            err.close()
        self.files = []


def run_jobs(jobs: list[tuple[Any, ...]]) -> list[Any]:
    """Each job in a child process of its own, all at once; their answers in order."""
    with contextlib.closing(Workers(jobs)) as workers:
        return workers.results()
