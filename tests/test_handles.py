"""Handles fold to one canonical spelling; '-'/'_' look-alikes are reported, not merged."""

from __future__ import annotations

import pytest

from phasegate.handles import HandleBook, canonical_handle, suspected_duplicates
from phasegate.values import DecodeError


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("seth", "seth"),
        ("@Seth", "seth"),
        ("  @SETH ", "seth"),
        ("@@seth", "seth"),
        ("ops-agent", "ops-agent"),
        ("Ops_Agent", "ops_agent"),
        ("@welcome-agent", "welcome-agent"),
        ("Zoë", "zoë"),
    ],
)
def test_canonical_form_trims_strips_at_and_lowercases(raw: str, canonical: str) -> None:
    """Trim, strip leading @, lowercase; keep '-' and '_' as written."""
    assert canonical_handle(raw) == canonical


@pytest.mark.parametrize("raw", ["", "  ", "@", " @ "])
def test_an_empty_handle_is_an_error(raw: str) -> None:
    """A handle that folds to nothing cannot be a user."""
    with pytest.raises(DecodeError, match="empty handle"):
        canonical_handle(raw)


def test_spellings_that_fold_together_are_reported_once() -> None:
    """Two KV spellings of one handle are merged and reported with both spellings."""
    book = HandleBook("streaks")
    for raw, key in (("@Seth", "streak:@Seth"), ("seth", "streak:seth"), ("al", "streak:al")):
        book.canonical(raw, key)
    (finding,) = book.findings()
    assert finding.kind == "merged_spellings"
    assert finding.key == "streak:@Seth"
    assert "'@Seth'" in finding.detail
    assert "'seth'" in finding.detail


def test_dash_underscore_lookalikes_are_suspected_duplicates() -> None:
    """ops-agent and ops_agent may be one person: reported, never merged."""
    (finding,) = suspected_duplicates("users", {"ops-agent", "ops_agent", "scout"})
    assert finding.kind == "suspected_duplicate"
    assert finding.severity == "warning"
    assert "ops-agent" in finding.detail
    assert "ops_agent" in finding.detail
    assert suspected_duplicates("users", {"ops-agent", "scout"}) == []
