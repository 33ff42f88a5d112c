"""Every ``tests/**/test_*.py`` file must be collected by pytest.

pytest's default ``norecursedirs`` silently skips folders named ``dist``, ``build``,
``.*``, ``venv`` ... (the 23 tests once kept in ``tests/dist/`` never ran).  This test
asks pytest itself which files it collects and compares with what is on disk.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _files_on_disk():
    found = set()
    for top, dirs, files in os.walk(HERE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                found.add(os.path.relpath(os.path.join(top, name), ROOT))
    return found


def _files_collected():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return {line.split("::", 1)[0] for line in out.stdout.splitlines() if "::" in line}


def test_every_test_file_is_collected():
    on_disk = _files_on_disk()
    assert len(on_disk) > 50  # the walk itself works
    missing = sorted(on_disk - _files_collected())
    assert not missing, f"test files pytest does not collect: {missing}"
