"""The tutorials in docs/tutorials execute from top to bottom (nbclient, a real Jupyter kernel)
in a fresh folder, and each shows at least one figure."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


def test_every_tutorial_is_linked_from_the_readme():
    readme = (TUTORIALS.parents[1] / "README.md").read_text()
    assert len(NOTEBOOKS) >= 3
    for nb in NOTEBOOKS:
        assert f"docs/tutorials/{nb.name}" in readme, nb.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / ".mpl"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                      resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    client.execute()  # raises CellExecutionError naming the cell that failed
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel, once it has exited
    kernel_cpu = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure shown"
    print(f"{path.name}: {took:.1f} s wall, {kernel_cpu:.1f} s CPU in the kernel, 1-min load "
          f"{os.getloadavg()[0]:.1f}")  # shown with -rA
    assert os.listdir(tmp_path)  # it worked in its own folder
