"""dtnn.io.atomic: the one way dtnn writes a file (all or nothing, no debris)."""
import os
import subprocess
import sys

import pytest

from dtnn.io import atomic


def _listing(directory):
    return sorted(os.listdir(directory))


def test_write_text_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic.write_text(str(target), "old\n")
    atomic.write_text(str(target), "new content\n", durable=True)
    assert target.read_text() == "new content\n"
    assert _listing(target.parent) == ["a.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_keeps_old_content_and_removes_temp(tmp_path, error):
    target = tmp_path / "a.bin"
    atomic.write_bytes(str(target), b"previous")
    with pytest.raises(error):
        with atomic.atomic_path(str(target), durable=True) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"half")
            assert os.path.exists(tmp) and ".tmp-" in os.path.basename(tmp)
            raise error()
    assert target.read_bytes() == b"previous"
    assert _listing(tmp_path) == ["a.bin"]


def test_stale_temp_of_dead_writer_removed_live_and_foreign_kept(tmp_path):
    target = tmp_path / "checkpoint.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = atomic.host_tag()
    names = {
        "dead": f".checkpoint.h5.tmp-{host}-{dead}",
        "old_format_dead": f".checkpoint.h5.tmp-{dead}",
        "live": f".checkpoint.h5.tmp-{host}-{os.getpid()}",
        "other_host": f".checkpoint.h5.tmp-elsewhere_node-{dead}",
        "other_file": f".metrics.jsonl.tmp-{host}-{dead}",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    removed = sorted(os.path.basename(p) for p in atomic.remove_stale_temp_files(str(target)))
    assert removed == sorted([names["dead"], names["old_format_dead"]])
    assert _listing(tmp_path) == sorted([names["live"], names["other_host"],
                                         names["other_file"]])


def test_temp_path_is_beside_target_and_names_host_and_pid(tmp_path):
    tmp = atomic.temp_path(str(tmp_path / "x.onnx"))
    assert os.path.dirname(tmp) == str(tmp_path)
    assert os.path.basename(tmp) == f".x.onnx.tmp-{atomic.host_tag()}-{os.getpid()}"


def test_importing_atomic_does_not_load_h5py():
    code = "import sys, dtnn.io.atomic; print('h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
