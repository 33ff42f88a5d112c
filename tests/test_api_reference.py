"""Every public name has a docstring, and the API reference builds (pdoc).

The public API is ``dtnn.__all__`` plus the ``__all__`` of the subpackages users
import (models, layers, optim, data, parallel, compress, tune); for classes, their
public methods and properties count too (a docstring inherited from a base is fine).
Build the reference yourself with ``python -m pdoc -o docs/api dtnn``.
"""
import importlib
import inspect
import os
import subprocess
import sys

import pytest

import dtnn

SUBPACKAGES = ("models", "layers", "optim", "data", "parallel", "compress", "tune", "infer")


def _public():
    for name in dtnn.__all__:
        yield f"dtnn.{name}", getattr(dtnn, name)
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"dtnn.{sub}")
        yield f"dtnn.{sub}", module
        for name in getattr(module, "__all__", []):
            yield f"dtnn.{sub}.{name}", getattr(module, name)


def _undocumented():
    missing = []
    for name, obj in _public():
        if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj):
            if not inspect.getdoc(obj):
                missing.append(name)
        if not inspect.isclass(obj) or not obj.__module__.startswith("dtnn"):
            continue
        for attr, value in vars(obj).items():
            fn = value.fget if isinstance(value, property) else value
            if attr.startswith("_") or not inspect.isfunction(fn) or inspect.getdoc(fn):
                continue
            if not any(inspect.getdoc(getattr(base, attr, None)) for base in obj.__mro__[1:]
                       if base is not object and hasattr(base, attr)):
                missing.append(f"{name}.{attr}")
    return sorted(set(missing))


def test_every_public_name_has_a_docstring():
    assert _undocumented() == []


def test_top_level_names_resolve_lazily():
    code = ("import sys, dtnn; assert 'dtnn.engine.session' not in sys.modules; "
            "dtnn.DistributedOptimizer; dtnn.Sequential; print(sorted(dtnn.__all__)[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    with pytest.raises(AttributeError, match="no attribute"):
        dtnn.not_a_name


@pytest.mark.timeout(300, method="thread")
def test_api_reference_builds(tmp_path):
    pytest.importorskip("pdoc")
    out = subprocess.run([sys.executable, "-m", "pdoc", "-o", str(tmp_path), "dtnn"],
                         capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    top = (tmp_path / "dtnn.html").read_text()
    for name in ("DistributedOptimizer", "Sequential", "init", "evaluate"):
        assert name in top, name
    for sub in SUBPACKAGES:
        assert os.path.exists(tmp_path / "dtnn" / f"{sub}.html"), sub
