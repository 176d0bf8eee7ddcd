"""Quiet exit when the reader of stdout goes away (``nuage-ctl acl list | head -1``).

Python raises BrokenPipeError on the next write (and again when it flushes stdout at exit,
with a traceback). The commands' output was cut by the reader's choice, not by an error of
the command, so the console scripts exit 0 without a message. A BrokenPipeError that is not
about stdout (a socket, a child's pipe) is raised as before. SIGPIPE is not reset to its
default action: that would also kill the process on a socket write the API client handles.
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable


def stdout_closed() -> bool:
    """Has the reading end of stdout been closed? (poll reports POLLERR on such a pipe)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poller.poll(0))


def run_quietly(main: Callable[[], int]) -> int:
    """Run ``main`` and flush stdout; a closed stdout ends it with 0 and no traceback."""
    try:
        code = main()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        if not stdout_closed():
            raise
        # Python flushes stdout once more at exit: give it /dev/null so that it has nothing to report.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
