"""Suite-wide test plumbing.

* ``isa_level``: a test that takes this fixture runs once per instruction-set level of
  the compiled kernels (``dtnn._kernels.isa``: avx512, avx2, generic), with every
  module capped at that level; a level this CPU cannot run is skipped with the reason.
  A test module narrows the levels with ``ISA_LEVELS = (...)`` (the paths its kernels
  have).
* No silent skips: a skip must say why.  tests/run_all.sh prints every skip's reason
  (``-rs``); a skip with an empty reason fails here.
* One BestOf decision cache per test session (``$DTNN_TUNE_CACHE``, inherited by the
  subprocesses tests launch): convolutions tune by default (``bestof``), and a test
  run must neither read nor write the user's ``~/.cache/dtnn/tune``.
"""
import os
import tempfile

import pytest

if not os.environ.get("DTNN_TUNE_CACHE"):
    os.environ["DTNN_TUNE_CACHE"] = tempfile.mkdtemp(prefix="dtnn-tests-tune-")

_LEVELS = ("avx512", "avx2", "generic")


def _cpu_level():
    from dtnn._kernels.isa import LEVELS, cpu
    return LEVELS.index(cpu())


def pytest_generate_tests(metafunc):
    if "isa_level" not in metafunc.fixturenames:
        return
    from dtnn._kernels.isa import LEVELS, cpu
    best = _cpu_level()
    params = []
    for level in getattr(metafunc.module, "ISA_LEVELS", _LEVELS):
        why = (f"this CPU cannot run the {level} paths (its best level: {cpu()})"
               if LEVELS.index(level) > best else None)
        params.append(pytest.param(level, id=level,
                                   marks=pytest.mark.skipif(why is not None, reason=why or "-")))
    metafunc.parametrize("isa_level", params, indirect=True)


@pytest.fixture
def isa_level(request):
    from dtnn._kernels.isa import capped
    with capped(request.param):
        yield request.param


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped:").strip()
        if not reason or reason == "unconditional skip":
            report.outcome = "failed"
            report.longrepr = (f"{item.nodeid}: skipped without a reason; every skip must "
                               f"say why (tests/conftest.py)")
