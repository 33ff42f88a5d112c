"""JsonlWriter / read_jsonl."""
import json
import math

import numpy as np
import pytest

from dtnn.errors import DataError
from dtnn.io import JsonlWriter, read_jsonl


def test_write_and_read_with_numpy_values(tmp_path):
    path = tmp_path / "logs" / "train.jsonl"  # directory is created
    with JsonlWriter(path) as w:
        w.write({"step": np.int64(3), "loss": np.float32(0.25), "ok": np.bool_(True),
                 "hist": np.arange(3), "lrs": [np.float64(0.1)], "name": "résumé"})
        w.write({"step": 4, "loss": float("nan")})
    records = read_jsonl(path)
    assert records[0] == {"step": 3, "loss": 0.25, "ok": True, "hist": [0, 1, 2],
                          "lrs": [0.1], "name": "résumé"}
    assert type(records[0]["step"]) is int
    assert records[1]["step"] == 4 and math.isnan(records[1]["loss"])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(isinstance(json.loads(line), dict) for line in lines)


def test_each_write_is_flushed(tmp_path):
    path = tmp_path / "a.jsonl"
    w = JsonlWriter(path)
    w.write({"a": 1})
    assert read_jsonl(path) == [{"a": 1}]  # visible before close
    w.write({"a": 2})
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    w.close()
    assert w.closed
    with pytest.raises(ValueError):
        w.write({"a": 3})


def test_appends_across_writers(tmp_path):
    path = tmp_path / "a.jsonl"
    with JsonlWriter(path) as w:
        w.write({"run": 1})
    with JsonlWriter(path) as w:
        w.write({"run": 2})
    assert read_jsonl(path) == [{"run": 1}, {"run": 2}]


def test_partial_last_line_is_skipped_and_next_writer_starts_fresh(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "b"', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}]
    with JsonlWriter(path) as w:
        w.write({"a": 3})
    assert read_jsonl(path) == [{"a": 1}, {"a": 3}]


def test_unterminated_but_complete_last_line_is_kept(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    with JsonlWriter(path) as w:
        w.write({"a": 3})
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_partial_only_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": ', encoding="utf-8")
    assert read_jsonl(path) == []
    with JsonlWriter(path) as w:
        w.write({"a": 1})
    assert path.read_text(encoding="utf-8") == '{"a":1}\n'


def test_bad_record_is_not_written(tmp_path):
    path = tmp_path / "a.jsonl"
    with JsonlWriter(path) as w:
        with pytest.raises(TypeError):
            w.write({"x": object()})
        with pytest.raises(TypeError):
            w.write([1, 2])
        w.write({"x": 1})
    assert read_jsonl(path) == [{"x": 1}]


@pytest.mark.parametrize("content,match", [
    ('{"a": 1}\nnot json\n{"a": 2}\n', r":2: not valid JSON"),
    ('{"a": 1}\n[1, 2]\n', r":2: expected a JSON object"),
])
def test_malformed_lines(tmp_path, content, match):
    path = tmp_path / "a.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match) as e:
        read_jsonl(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_blank_lines_ignored(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('\n{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
