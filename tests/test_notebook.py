"""notebooks/results.ipynb executes headless (nbclient) on a tiny sweep it runs itself."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def test_results_notebook_runs_a_tiny_sweep_and_shows_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("LANAS_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.delenv("LANAS_SWEEP_DIRS", raising=False)
    # The kernel's own temp dir, so that what it leaves behind is seen (and no one else's folders).
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    nb = nbformat.read(ROOT / "notebooks" / "results.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "4 finished runs" in text and "| searcher.tree_height |" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4  # 3 report figures + the inline plot
    assert (tmp_path / "report" / "table.csv").is_file()
    assert "TqdmWarning" not in text and "IProgress" not in text
    # The tiny sweep and any report folder were temporary: gone once the kernel has shut down.
    assert not [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith(("lanas-sweep-", "lanas-report-"))]
