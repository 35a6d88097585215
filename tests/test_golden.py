"""`initlab plot`, `initlab check` and `initlab sweep-index` give the same outputs on the same runs.

Three small sweeps (``tests/golden/runs/``: He et al.'s deep ReLU nets, dropout, batch norm; 2 seeds where
the claims group seeds) are read by the commands, and every output -- each figure's signature (what it draws:
titles, labels, scales, legends, every line's label, color, style and data), ``index.md``, ``table.md``,
``table.csv``, ``claims.md``, the sweep index and what the commands print -- must equal the golden copy in
``tests/golden/outputs/``. A deliberate change of an output is made by regenerating the golden files
(``python tests/golden/regenerate.py outputs``) and reviewing their diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from golden_tools import OUTPUTS, SWEEPS, run_commands


@pytest.mark.parametrize("name", SWEEPS)
def test_outputs_match_the_golden_copy(name: str, tmp_path: Path) -> None:
    produced = run_commands(tmp_path, name)
    expected = {
        str(p.relative_to(OUTPUTS / name)): p.read_text() for p in (OUTPUTS / name).rglob("*") if p.is_file()
    }
    assert sorted(produced) == sorted(expected)
    different = [key for key in expected if produced[key] != expected[key]]
    assert not different, f"outputs differ from tests/golden/outputs/{name}: {different}"
