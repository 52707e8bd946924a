"""Settings resolve once, with flag > environment > pyproject > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from phasegate.errors import UsageError
from phasegate.settings import SETTINGS, load_pyproject, redact_url, resolve, settings_table


def test_flag_beats_env_beats_pyproject_beats_default() -> None:
    """Each source wins over the ones after it, and the origin is recorded."""
    pyproject = {"seed": 3, "scale": "6mo", "docker": "never"}
    env = {"PHASEGATE_SEED": "4", "PHASEGATE_SCALE": "12mo"}
    s = resolve(flags={"seed": "5"}, env=env, pyproject=pyproject)
    assert (s.seed, s.scale, s.docker, s.phase) == (5, "12mo", "never", None)
    assert s.sources["seed"] == "--seed"
    assert s.sources["scale"] == "PHASEGATE_SCALE"
    assert s.sources["docker"] == "pyproject.toml"
    assert "phase" not in s.sources


def test_settings_are_frozen() -> None:
    """A resolved settings object cannot be changed."""
    s = resolve(flags={}, env={}, pyproject={})
    with pytest.raises(AttributeError):
        s.seed = 1  # type: ignore[misc]


def test_bad_value_names_its_source_and_hides_the_password() -> None:
    """A malformed value is a usage error naming where it came from, secrets hidden."""
    with pytest.raises(UsageError, match="PHASEGATE_PHASE") as info:
        resolve(flags={}, env={"PHASEGATE_PHASE": "E"}, pyproject={})
    assert "A, B, C, D" in str(info.value)
    with pytest.raises(UsageError) as bad_url:
        resolve(flags={"kv_url": "hunter2@nowhere"}, env={}, pyproject={})
    assert "--kv-url" in str(bad_url.value)


def test_unknown_pyproject_key_is_an_error() -> None:
    """A typo in [tool.phasegate] fails loudly instead of being ignored."""
    with pytest.raises(UsageError, match="sed"):
        resolve(flags={}, env={}, pyproject={"sed": 1})


def test_pyproject_section_is_found_from_a_subfolder(tmp_path: Path) -> None:
    """The nearest pyproject.toml above the working folder supplies [tool.phasegate]."""
    (tmp_path / "pyproject.toml").write_text("[tool.phasegate]\nscale = '6mo'\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert load_pyproject(tmp_path / "a" / "b") == {"scale": "6mo"}


def test_repr_and_describe_never_show_passwords() -> None:
    """Passwords in URLs never reach logs or reports."""
    s = resolve(flags={"pg_url": "postgresql://app:hunter2@db/vibe"}, env={}, pyproject={})
    assert "hunter2" not in repr(s)
    assert all("hunter2" not in value for _n, value, _o in s.describe())
    assert (
        redact_url("rediss://default:tok@kv.example:6379") == "rediss://default:***@kv.example:6379"
    )


def test_readme_table_matches_the_declared_settings() -> None:
    """The README's settings table is the generated one, so they cannot drift."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert settings_table() in readme
    assert len(SETTINGS) == settings_table().count("\n") - 1


def test_the_public_facade_exports_the_stable_surface() -> None:
    """Settings, connections, mappings, compare, backfill and gate results import from
    the package itself."""
    import phasegate

    assert set(phasegate.__all__) == {"__version__", *phasegate._EXPORTS}
    for name in phasegate.__all__:
        assert getattr(phasegate, name) is not None
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = phasegate.no_such_thing
