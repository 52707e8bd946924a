"""The fork server: children behave as fresh interpreters would, for what callers use."""

from __future__ import annotations

import os
import signal
import tempfile
import time

import pytest

from phasegate.parity import forks


def run(source: str, stdin: bytes = b"") -> tuple[forks.Child, bytes, bytes]:
    """A child running ``source``; its exit code, stdout and stderr once it ended."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        read_end, write_end = os.pipe()
        child = forks.start(("code", source), read_end, out.fileno(), err.fileno())
        os.close(read_end)
        with open(write_end, "wb") as pipe:
            pipe.write(stdin)
        child.wait()
        out.seek(0)
        err.seek(0)
        return child, out.read(), err.read()


def test_a_child_reads_its_stdin_writes_its_output_and_exits_with_its_code() -> None:
    source = "import sys; data = sys.stdin.buffer.read(); print(data.decode().upper())"
    source += "; print('to stderr', file=sys.stderr); sys.exit(3)"
    child, out, err = run(source, b"batch")
    assert (child.returncode, out, err) == (3, b"BATCH\n", b"to stderr\n")


def test_exit_with_a_message_and_an_uncaught_error_exit_1_saying_why() -> None:
    child, _, err = run("import sys; sys.exit('boom')")
    assert (child.returncode, err) == (1, b"boom\n")
    child, _, err = run("raise ValueError('bad batch')")
    assert child.returncode == 1
    assert err.decode().strip().endswith("ValueError: bad batch")


def test_a_killed_child_ends_with_minus_sigkill_and_poll_sees_it() -> None:
    with tempfile.TemporaryFile() as out:
        read_end, write_end = os.pipe()
        child = forks.start(("code", "import time; time.sleep(60)"), read_end, out.fileno(), 2)
        os.close(read_end)
        os.close(write_end)
        assert child.poll() is None
        child.kill()
        assert child.wait() == -signal.SIGKILL
        assert child.poll() == -signal.SIGKILL


def test_a_changed_environment_gets_a_server_that_children_see_it_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    show = "import os; print(os.environ.get('PHASEGATE_FORKS_PROBE', '-'))"
    before = forks.server()
    assert run(show)[1] == b"-\n"
    monkeypatch.setenv("PHASEGATE_FORKS_PROBE", "changed")
    assert run(show)[1] == b"changed\n"
    assert forks.server() is not before
    monkeypatch.delenv("PHASEGATE_FORKS_PROBE")
    assert forks.server() is before


def test_a_server_that_died_is_replaced_and_its_caller_told() -> None:
    dead = forks.server()
    dead.proc.kill()
    dead.proc.wait()
    with pytest.raises(forks.ForkServerError, match="fork server"):
        dead.start(("code", "pass"), (0, 1, 2))
    started = time.monotonic()
    child, out, _ = run("print('after')")
    assert (child.returncode, out) == (0, b"after\n")
    assert forks.server() is not dead
    assert time.monotonic() - started < 30
