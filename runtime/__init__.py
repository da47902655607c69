"""The built-in container runtime: namespaces, cgroups, a lab network.

Knows containers and nothing of benchmarks. Kept import-light: the container
init runs from this package under ``python -S``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: the init does not import typing (start-up time)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    PROJECT_ROOT: Path

# A string, so that the init (under python -S, where every import is start-up
# time) never imports pathlib; ``PROJECT_ROOT`` is the same as a Path, made on use.
_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def __getattr__(name: str) -> Any:
    if name == "PROJECT_ROOT":
        from pathlib import Path

        return Path(_ROOT)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")


def init_command(*args: str) -> list[str]:
    """The command line of the container init (``runtime/init.py``) with ``args``.

    ``-S`` (no site-packages) and ``-E -s`` (no environment, no user site)
    keep its start fast and independent of the caller's environment; it needs
    only the standard library and this package.
    """
    import sys

    boot = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from runtime.init import main; del sys.argv[1]; main()"
    )
    return [sys.executable, "-E", "-s", "-S", "-c", boot, _ROOT, *args]
