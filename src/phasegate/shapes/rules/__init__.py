"""One shape rule per module; each exposes ``check(statement, tree, schema)``."""
