"""docs/data-model.md describes what the built-in mappings declare: a key
pattern, table or column a mapping adds without a word there fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from phasegate import mappings
from phasegate.mappings import MAPPINGS
from phasegate.mappings.base import Mapping

DOC = Path(__file__).parents[1] / "docs" / "data-model.md"
BUILT_IN = [MAPPINGS[type_id] for type_id in mappings.BUILT_IN]


def _section(type_id: str) -> str:
    """The doc's section of one type: from its heading to the next."""
    text = DOC.read_text()
    found = re.search(rf"^### {type_id}: (.*?)(?=^##)", text, re.M | re.S)
    assert found, f"docs/data-model.md has no '### {type_id}: ...' section"
    return found.group(0)


@pytest.mark.parametrize("mapping", BUILT_IN, ids=lambda m: m.type_id)
def test_each_type_is_described_with_its_keys_table_and_columns(mapping: Mapping) -> None:
    section = _section(mapping.type_id)
    assert f"`{mapping.table}`" in section.splitlines()[0], mapping.table
    for pattern in mapping.patterns:
        row = f"| `{pattern.glob}`"
        rows = [line for line in section.splitlines() if line.startswith(row)]
        assert rows, f"{mapping.type_id}: key pattern {pattern.glob} is not in the doc"
        assert any(
            f"| {pattern.rtype} | {pattern.variant} | {pattern.role} |" in r for r in rows
        ), f"{mapping.type_id}: {pattern.glob} ({pattern.rtype}, {pattern.variant}) differs"
    columns = re.search(r"Columns: ([`\w, ]+)", " ".join(section.split()))
    assert columns, f"{mapping.type_id}: no 'Columns:' sentence"
    listed = {name.strip(" `") for name in columns.group(1).split(",")}
    missing = [c.name for c in mapping.columns if c.name not in listed]
    assert not missing, f"{mapping.type_id}: columns {missing} are not in the doc"


def test_every_kv_only_pattern_is_named() -> None:
    text = DOC.read_text()
    missing = [glob for glob in mappings._VIBE_KV_ONLY if f"`{glob}`" not in text]
    assert not missing, missing
