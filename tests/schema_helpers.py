"""Directory databases of older schemas, for the tests that convert them (one copy of the set-up)."""

from __future__ import annotations

import json
from pathlib import Path

from nuage_ryu.db.server import prepare_db
from nuage_ryu.directory.store.mirror import schema_path


def current_schema() -> dict:
    """The installed directory schema, as a dict a test edits into an older one."""
    with open(schema_path()) as f:
        return json.load(f)


def old_database(tmp_path: Path, schema: dict, db: str | None = None) -> tuple[str, str]:
    """Create a database of ``schema`` (an older schema, edited from ``current_schema()``).

    Returns (the database's path, the old schema file's path); the schema file is written into
    ``tmp_path``, the database at ``db`` (default: ``tmp_path/directory.db``).
    """
    old_path = tmp_path / "old.ovsschema"
    old_path.write_text(json.dumps(schema))
    db = db or str(tmp_path / "directory.db")
    assert prepare_db(db, str(old_path)) == "created"
    return db, str(old_path)
