"""The built-in container runtime: namespaces, cgroups, a lab network.

Knows containers and nothing of benchmarks. Kept import-light: the container
init runs from this package under ``python -S``.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    return [sys.executable, "-E", "-s", "-S", "-c", boot, str(PROJECT_ROOT), *args]
