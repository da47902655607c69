"""A test hook: the controller SIGKILLs itself at a named point of the runtime.

``IPCBENCH_CRASH_AT=<point>[:<n>]`` makes the process that drives the runtime
kill itself with SIGKILL the ``n``-th time (default: the first) it reaches
``point``, so that tests/test_crash.py can prove that nothing outlives a
controller killed at exactly that moment. Points:

``lab-open``
    the lab's namespace and bridge exist, no container is attached yet
``lab-attach``
    a container's veth pair exists, its far end not yet configured
``container-started``
    a container's workload runs (the second one of a cell: mid-cell)
``container-remove``
    a container has stopped, its veth and cgroup are not yet removed
``runtime-close``
    every container is gone, the lab networks are not yet closed

Read once, from the environment, here only; unset, every call is a no-op.
"""

from __future__ import annotations

import os
import signal

ENV = "IPCBENCH_CRASH_AT"
POINTS = ("lab-open", "lab-attach", "container-started", "container-remove", "runtime-close")

_point, _, _count = os.environ.get(ENV, "").partition(":")
_remaining = int(_count or 1)


def reached(point: str) -> None:
    """SIGKILL this process if the hook names ``point`` and its count is reached."""
    global _remaining
    if point != _point:
        return
    _remaining -= 1
    if _remaining == 0:
        os.kill(os.getpid(), signal.SIGKILL)
