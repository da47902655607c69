"""The built-in container runtime: namespaces, cgroups, a lab network.

Knows containers and nothing of benchmarks. Kept import-light: the container
init runs from this package under ``python -S``.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
