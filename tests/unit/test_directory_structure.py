"""The directory's tables by kind agree with the model and the schema, and python-ovs internals stay
confined to the store's few functions that say why."""

import json
import pathlib
import re

from nuage_ryu.directory.model import KINDS
from nuage_ryu.directory.store import mirror, rows, schema_path
from nuage_ryu.directory.validate import create, delete, update

DIRECTORY = pathlib.Path(__file__).resolve().parents[2] / "nuage_ryu" / "directory"


def test_every_kind_has_a_create_planner_and_a_row_converter():
    assert set(create.CREATE_PLANNERS) == set(KINDS)
    assert set(rows.ROW_CONVERTERS) == set(KINDS)


def test_update_and_delete_tables_name_only_known_kinds():
    for table in (update.UPDATE_PLANNERS, update.NAME_SIBLINGS, delete.DEPENDENTS, delete.CHILDREN):
        assert set(table) <= set(KINDS)


def test_the_store_replicates_every_table_of_the_schema():
    with open(schema_path()) as f:
        tables = set(json.load(f)["tables"])
    # everything but the database server's own configuration (RBAC roles, listeners: ovsdb/rbac.py)
    # and the placement index, which writers keep (keys only) and agents read by select
    from nuage_ryu.db import rbac
    from nuage_ryu.directory.store import placement_rows

    assert set(mirror.REPLICATED) == tables - set(rbac.CONFIG_TABLES) - set(placement_rows.TABLES)
    writer = mirror.schema_helper(schema_path(), placement_writer=True).get_idl_schema()
    assert set(placement_rows.TABLES) <= set(writer.tables)
    assert not set(placement_rows.TABLES) & set(mirror.schema_helper(schema_path()).get_idl_schema().tables)


def test_python_ovs_private_methods_are_hooked_in_the_connection_only():
    """The share fetch overrides python-ovs's private Idl methods (store/connection.py says which
    and why); nothing else calls or overrides one."""
    found = sorted({str(path.relative_to(DIRECTORY)) for path in DIRECTORY.rglob("*.py")
                    if "_Idl__" in path.read_text()})
    assert found == ["store/connection.py"]


def test_python_ovs_internals_are_read_in_three_functions_only():
    private = re.compile(r"(?<!\bself)\.(_data|_session|_table|_changes|_mutations|_prereqs|_idl)\b")
    found = sorted(
        (str(path.relative_to(DIRECTORY)), line.strip())
        for path in DIRECTORY.rglob("*.py")
        for line in path.read_text().splitlines()
        if private.search(line))
    assert found == [
        ("store/connection.py", "return idl._session"),
        ("store/rows.py", "return row._data[column]"),
        ("store/rows.py", "return row._table.name"),
    ]
