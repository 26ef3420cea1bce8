"""benchmarks/age_recovery.py: where it writes, and that it never writes over a kept table."""

from __future__ import annotations

import pytest

from tests.benchmark_scripts import load_benchmark


def test_refuses_to_replace_an_existing_table_before_any_work(tmp_path, capsys):
    table = tmp_path / "results" / "age_recovery.md"
    table.parent.mkdir(parents=True)
    table.write_text("kept\n")
    with pytest.raises(SystemExit) as exc:
        # 40 tiles of 2048 px would take many minutes: the refusal has to come first.
        load_benchmark("age_recovery").main(["--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert table.read_text() == "kept\n"
    assert not (tmp_path / "figures").exists()


def test_the_default_output_is_not_the_docs_table():
    out = load_benchmark("age_recovery").DEFAULT_OUT
    assert out.parts[-2:] == ("runs", "age_recovery")
    assert "docs" not in out.parts
