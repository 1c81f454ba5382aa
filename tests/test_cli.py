"""The command line."""

from __future__ import annotations

import pytest

from sk_reweight.__main__ import main


def test_demo_prints_a_table_for_both_datasets(capsys):
    assert main(["demo", "--folds", "2", "--repeats", "1", "--epochs", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [
        line for line in lines if line.startswith("| breast_cancer") or line.startswith("| digits")
    ]
    assert len(rows) == 4
    assert any("| RGD |" in row for row in rows)


@pytest.mark.parametrize("argv", [[], ["train"], ["demo", "--folds", "many"]])
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: sk-reweight" in capsys.readouterr().err
