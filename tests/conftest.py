"""Shared fixtures: a runtime per test, and a session-wide check that nothing leaks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from runtime.local import LocalRuntime
from tests.leftovers import leftovers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests marked needs_root fail loudly (not skip) without root: the test
    # command runs as root, and a skipped test must never count as a pass.
    if os.geteuid() != 0 and any(i.get_closest_marker("needs_root") for i in items):
        raise pytest.UsageError("these tests need root: run them with `make test` as root")


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    before = set(leftovers())
    yield
    after = [x for x in leftovers() if x not in before]
    assert not after, f"the tests left these behind: {after}"


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime() as runtime:
        yield runtime
    assert not leftovers(runtime.run_id), leftovers(runtime.run_id)
