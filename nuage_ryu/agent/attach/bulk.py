"""The directory step of concurrent attaches/detaches as one bulk request (``POST /bulk``).

The directory's bulk API (docs/api.md, "Bulk") applies many creates and deletes in
one transaction, all or nothing, and names the refused operation in its error
(``operation N (...): ...``). ``BulkVPorts`` turns that into per-item outcomes for
the attach service's group commit (batch.py): the refused item gets its own error,
the others are sent again without it, so one bad request never fails the rest.

Whether the directory has the bulk API is asked once (``supported()``: an empty
dry-run request). Without it, every caller makes its single call in its own thread,
in parallel, as before: batches of single calls would only serialise them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from nuage_ryu.directory.client import CannotConnect, DirectoryClient
from nuage_ryu.directory.errors import DirectoryError, Forbidden, MethodNotAllowed, NotFound

CREATE, DELETE = "create", "delete"
_FAILED_OP = re.compile(r"^operation (\d+) \([^)]*\): ")


class BulkVPorts:
    """Vport creates and deletes of many attachments in one directory transaction."""

    def __init__(self, directory: DirectoryClient) -> None:
        self.directory = directory
        self.available: bool | None = None  # None until the directory answered a bulk request
        self.requests = 0                   # bulk requests sent (for tests and /v1/status)

    def supported(self) -> bool:
        """Whether the directory has (and lets this agent use) the bulk API; asked once.

        The probe is an empty dry run: any answer of the bulk handler itself (200, or a 400 for
        the empty list) means yes; 404/405 (no such path) or 403 means no. Unreachable: no for
        now (asked again next time).
        """
        if self.available is None:
            try:
                self.directory.request("POST", "/bulk", {"operations": []}, params={"dry_run": "true"})
                self.available = True
            except (NotFound, MethodNotAllowed, Forbidden) as exc:
                self.available = bool(_FAILED_OP.match(exc.message or ""))
            except CannotConnect:
                return False
            except DirectoryError as exc:
                if exc.status >= 500:
                    return False
                self.available = True  # the bulk handler refused the empty request: it exists
        return self.available

    def create(self, items: list[tuple[str, dict]]) -> list:
        """Outcomes (the vport, or the exception) of creating ``(subnet id, fields)`` each."""
        return self.apply([(CREATE, item) for item in items])

    def delete(self, vport_ids: list[str]) -> list:
        """Outcomes (True: deleted, False: already gone, or the exception) of deleting each vport."""
        return self.apply([(DELETE, vport_id) for vport_id in vport_ids])

    def apply(self, changes: list[tuple[str, object]]) -> list:
        """Outcomes of (CREATE, (subnet id, fields)) and (DELETE, vport id) changes, mixed, in order.

        A host in churn creates and deletes vports at once: both go into one request (one
        directory transaction) instead of two.
        """
        ops, singles, outcome_of, gone = [], [], [], []
        for kind, item in changes:
            if kind == CREATE:
                subnet_id, fields = item
                ops.append({"action": "create", "kind": "vport", "parent": subnet_id, "body": fields})
                singles.append(functools.partial(self.directory.create_vport, subnet_id, fields))
                outcome_of.append(_created)
                gone.append(None)
            else:
                ops.append({"action": "delete", "kind": "vport", "id": item})
                singles.append(functools.partial(self.directory.delete_vport, item))
                outcome_of.append(_deleted)
                gone.append(False)
        return self._run(ops, singles, outcome_of, gone)

    def _run(self, ops: list[dict], singles: list[Callable[[], object]],
             outcome_of: list[Callable[[dict], object]], gone: list[object]) -> list:
        """Send ``ops`` as bulk requests until each has its outcome (``gone``: what a 404 delete means)."""
        outcomes: list = [None] * len(ops)
        pending = list(range(len(ops)))
        while pending:
            if len(pending) == 1 or self.available is False:
                for i in pending:
                    outcomes[i] = _outcome(singles[i])
                break
            try:
                self.requests += 1
                answer = self.directory.request("POST", "/bulk", {"operations": [ops[i] for i in pending]})
            except (NotFound, MethodNotAllowed) as exc:
                if self.available is None and not _FAILED_OP.match(exc.message):
                    self.available = False  # an older directory: no bulk API
                    continue
                index = _failed_index(exc, len(pending))
                if index is None:
                    raise
                bad = pending.pop(index)
                outcomes[bad] = gone[bad] if gone[bad] is not None and isinstance(exc, NotFound) \
                    else _stripped(exc)
                continue
            except DirectoryError as exc:
                index = _failed_index(exc, len(pending))
                if index is None:
                    raise  # not one operation's fault (e.g. unavailable): every item gets it
                outcomes[pending.pop(index)] = _stripped(exc)
                continue
            self.available = True
            for i, result in zip(pending, answer["results"], strict=True):
                outcomes[i] = outcome_of[i](result)
            break
        return outcomes


def _outcome(single: Callable[[], object]):
    try:
        return single()
    except Exception as exc:
        return exc


def _created(result: dict) -> dict:
    return result["object"]


def _deleted(_result: dict) -> bool:
    return True


def _failed_index(exc: DirectoryError, count: int) -> int | None:
    match = _FAILED_OP.match(exc.message or "")
    if match is None or int(match.group(1)) >= count:
        return None
    return int(match.group(1))


def _stripped(exc: DirectoryError) -> DirectoryError:
    """The error as the item's own single call would have raised it (without "operation N (...): ")."""
    if isinstance(exc, MethodNotAllowed):
        return exc
    clone = type(exc)(_FAILED_OP.sub("", exc.message or "", count=1))
    clone.__dict__.update({k: v for k, v in vars(exc).items() if k in ("status", "code")})
    return clone
