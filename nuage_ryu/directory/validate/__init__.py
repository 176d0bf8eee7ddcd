"""Validation and change planning: a request + a DirectoryState -> a Change, or a DirectoryError.

Pure: no I/O. Every REST write is planned here into one ``Change`` (a list of
insert/update/delete operations), which the store applies as one OVSDB
transaction, so a request is either applied completely or not at all.

Three steps, one module each: ``parse`` (the JSON body against the model's field
declarations), ``check`` (field values, and values against the state), and the
planners (``create``, ``update``, ``delete``), each a table from object kind to the
kind's planner. ``change`` holds what they produce.

Error classes: wrong JSON types / unknown fields -> BadRequest (400); invalid
values -> ValidationError (422); clashes with existing objects (names, VNIs,
addresses, priorities, overlaps, dependents, exhaustion) -> Conflict (409).
"""

from nuage_ryu.directory.validate.change import Change, Op, apply_change
from nuage_ryu.directory.validate.check import check_hostname, get_object, is_uuid
from nuage_ryu.directory.validate.create import plan_create
from nuage_ryu.directory.validate.delete import plan_delete
from nuage_ryu.directory.validate.parse import parse_body
from nuage_ryu.directory.validate.update import plan_membership, plan_update

__all__ = [
    "Change", "Op", "apply_change", "check_hostname", "get_object", "is_uuid", "parse_body", "plan_create",
    "plan_delete", "plan_membership", "plan_update",
]
