"""After Ctrl-C, and while a cluster closes, Dask's and tornado's loggers are quiet, including
the child loggers Dask's logging configuration gives a level of their own (tornado.application
at ERROR printed a traceback of a cancelled `sync` call under lrsim's one line). Read with
`logging.Logger.isEnabledFor`, the logging module's own answer to "would this record be
emitted"."""

from __future__ import annotations

import logging
import sys

import pytest

distributed = pytest.importorskip("distributed")  # noqa: F841 - its config sets the levels

from lrsim.cli import _quiet_shutdown  # noqa: E402
from lrsim.scan.cluster import quietly  # noqa: E402
from lrsim.scan.worker_logging import QUIET_LOGGERS, dask_setup, quiet_loggers  # noqa: E402

CHILDREN = ("tornado.application", "distributed.client")


@pytest.fixture
def levels():
    """Every logger under QUIET_LOGGERS restored after the test (and sys.unraisablehook)."""
    saved = {lg.name: lg.level for lg in quiet_loggers()}
    hook = sys.unraisablehook
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)
    sys.unraisablehook = hook


def test_dask_gives_children_levels_of_their_own(levels):
    """The premise: a level on the parent does not reach these children."""
    for name in CHILDREN:
        child = logging.getLogger(name)
        assert logging.NOTSET < child.level <= logging.ERROR
        logging.getLogger(name.split(".")[0]).setLevel(logging.CRITICAL + 1)
        assert child.isEnabledFor(logging.ERROR)


def test_quiet_loggers_holds_every_existing_child():
    names = {lg.name for lg in quiet_loggers()}
    assert set(QUIET_LOGGERS) | set(CHILDREN) <= names
    assert all(n.split(".")[0] in QUIET_LOGGERS for n in names)


def test_after_ctrl_c_no_dask_or_tornado_logger_emits(levels):
    _quiet_shutdown()
    for lg in quiet_loggers():
        assert not lg.isEnabledFor(logging.CRITICAL), lg.name


def test_a_worker_logs_only_critical(levels):
    dask_setup(None)
    for name in CHILDREN:
        lg = logging.getLogger(name)
        assert not lg.isEnabledFor(logging.ERROR) and lg.isEnabledFor(logging.CRITICAL)


def test_closing_quietly_silences_the_children_then_restores_them(levels):
    before = {name: logging.getLogger(name).level for name in CHILDREN}
    during = {}

    def close() -> None:
        during.update({n: logging.getLogger(n).isEnabledFor(logging.ERROR) for n in CHILDREN})

    quietly(close)
    assert during == {name: False for name in CHILDREN}
    assert {name: logging.getLogger(name).level for name in CHILDREN} == before
