"""Worker processes for the digest, diff and load jobs: each job in a child of its
own (:mod:`~phasegate.parity.compare_worker`), all started at once, so the second
core works in parallel (threads would share one GIL).

A caller that stops waiting (the backfill's load failed, Ctrl-C) kills them:
they are not left decoding the rest of a keyspace nobody will load.
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
import tempfile
from typing import IO, Any

from phasegate.parity.judge import answer

WORKER = [sys.executable, "-m", "phasegate.parity.compare_worker"]


class Workers:
    """The jobs' processes; ``close`` (as ``contextlib.closing``) kills any still running."""

    def __init__(self, jobs: list[tuple[Any, ...]], command: list[str] | None = None) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[tuple[IO[bytes], IO[bytes]]] = []
        try:
            for job in jobs:
                out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close)
                err = tempfile.TemporaryFile()  # noqa: SIM115
                self.files.append((out, err))
                proc = subprocess.Popen(
                    command or WORKER, stdin=subprocess.PIPE, stdout=out, stderr=err
                )
                self.procs.append(proc)
                assert proc.stdin is not None
                try:
                    with proc.stdin:
                        proc.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
                except BrokenPipeError:
                    pass  # it ended before reading its job: its answer says why
        except BaseException:
            self.close()
            raise

    def done(self) -> bool:
        """Whether every worker has ended (answered or failed)."""
        return all(proc.poll() is not None for proc in self.procs)

    def results(self) -> list[Any]:
        """Every worker's answer, in job order, once all have ended; the first
        worker's error is raised here as it was raised there."""
        for proc in self.procs:
            proc.wait()
        answers = []
        for proc, (out, err) in zip(self.procs, self.files, strict=True):
            out.seek(0)
            err.seek(0)
            answers.append((proc.returncode, out.read(), err.read()))
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
