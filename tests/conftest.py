"""Suite-wide settings. Tests never touch the internet: every p2pshare process
a test starts (they inherit this environment) stays off the public DHT.

Peer subprocesses (tests/harness.py): a failed test's report carries the log
tails of the processes that ran during it; the ``spawn`` fixture starts
processes that are stopped and reaped at teardown.
"""

import os

os.environ["P2PSHARE_NO_DEFAULT_BOOTSTRAP"] = "1"

from collections.abc import Generator, Iterator  # noqa: E402 - the environment is set first

import pytest  # noqa: E402

from tests import harness  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    harness.begin_test()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        text = harness.failure_report()
        if text:
            report.sections.append((f"peer process logs ({call.when})", text))
    return report


@pytest.fixture
def spawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Spawner]:
    """Start peer processes for one test; all are stopped and reaped at teardown."""
    spawner = harness.Spawner(tmp_path_factory.mktemp("peers"))
    try:
        yield spawner
    finally:
        spawner.stop_all()
