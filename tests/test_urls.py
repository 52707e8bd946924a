"""Store URLs are checked before anything connects, and no secret is ever shown."""

from __future__ import annotations

import pytest

from phasegate.cli import main
from phasegate.errors import UsageError
from phasegate.redact import redact
from phasegate.settings import resolve

SECRET = "Secr3tPW"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    ("flag", "url", "says"),
    [
        ("--kv-url", "redis://127.0.0.1:6379/notanumber", "the Redis DB must be a number"),
        ("--kv-url", "mysql://127.0.0.1/x", "is not one of redis://"),
        ("--kv-url", "redis://:6379/0", "names no host"),
        ("--pg-url", "postgres://", "names no host"),
        ("--pg-url", "postgresql://127.0.0.1:5432", "names no database"),
        ("--pg-url", "postgresql://127.0.0.1:5432/", "names no database"),
        ("--pg-url", "postgresql://127.0.0.1:port/x", "the port is not a number"),
        ("--pg-url", "host=127.0.0.1 dbname=x", "key=value connection string is not accepted"),
    ],
)
def test_a_bad_url_is_refused_before_anything_connects(flag: str, url: str, says: str) -> None:
    """Each ambiguous or libpq-defaulted target is a usage error naming the flag and the fix."""
    with pytest.raises(UsageError) as refused:
        resolve(flags={flag.removeprefix("--").replace("-", "_"): url}, env={}, pyproject={})
    assert flag in str(refused.value)
    assert says in str(refused.value)


def test_the_cli_refuses_a_bad_url_with_exit_2_and_no_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`inventory --kv-url mysql://x` and `seed --kv-url .../notanumber` exit 2, no traceback."""
    for argv in (
        ("inventory", "--kv-url", "mysql://x"),
        ("seed", "--kv-url", "redis://127.0.0.1:6379/notanumber"),
        ("schema", "apply", "--pg-url", "postgres://"),
    ):
        code, shown = run(capsys, *argv)
        assert code == 2, argv
        assert "Traceback" not in shown
        assert "phasegate:" in shown


@pytest.mark.parametrize(
    "argv",
    [
        ("inventory", "--kv-url", f"redis://ro:{SECRET}@127.0.0.1:1/0"),
        ("inventory", "--kv-url", f"redis://127.0.0.1:1/0?password={SECRET}"),
        ("schema", "apply", "--pg-url", f"postgresql://app:{SECRET}@127.0.0.1:1/vibe"),
        ("schema", "apply", "--pg-url", f"postgresql://127.0.0.1:1/vibe?password={SECRET}"),
        ("schema", "apply", "--pg-url", f"host=127.0.0.1 password={SECRET} dbname=vibe"),
        ("schema", "apply", "--pg-url", f"postgresql://127.0.0.1:1/vibe?sslpassword={SECRET}"),
    ],
)
def test_no_password_form_is_ever_shown(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    """Userinfo, query parameters and key=value secrets: the error never shows them."""
    code, shown = run(capsys, *argv)
    assert code == 2
    assert SECRET not in shown


def test_redact_hides_every_form() -> None:
    """One function hides all three forms; the rest of the text stays."""
    text = (
        f"redis://u:{SECRET}@h/0 postgresql://h/d?passfile=/p&password={SECRET} "
        f"password='{SECRET} x' token={SECRET}"
    )
    shown = redact(text)
    assert SECRET not in shown
    assert "redis://u:***@h/0" in shown
