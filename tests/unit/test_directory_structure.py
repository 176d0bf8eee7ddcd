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
    assert set(mirror.REPLICATED) == tables


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
