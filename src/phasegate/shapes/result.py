"""A statement to check and what the checks found in it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Statement:
    """One SQL statement, where it came from, and (for the catalog) what it relies on."""

    sql: str
    origin: str  # ``file:line``
    name: str  # catalogue name, or the origin for extracted SQL
    type_id: str | None = None
    expected_index: str | None = None
    expected_keys: tuple[str, ...] = ()  # normalised key expressions it relies on
    form: str = "catalog"  # how it was found: catalog, sql-file, js-tagged, js-call, py-call...

    @property
    def preview(self) -> str:
        text = " ".join(self.sql.split())
        return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class ShapeFinding:
    """One reason a statement will not be served the way it should be.

    Says the query, the index it expected (when one is known), why it does not
    match, and the rewrite when there is a standard one.
    """

    rule: str  # parse, unknown-name, index, no-index, order-by, or-pairs, in-pairs, any-array,
    # idempotent-write, read-path-shape, rerunnable-ddl, fk-index
    statement: Statement
    message: str
    expected: str = ""
    fix: str = ""

    def __str__(self) -> str:
        s = self.statement
        text = f"{s.origin} [{self.rule}] {s.name}: {self.message}"
        if self.expected:
            text += f"; expected index: {self.expected}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return text
