"""Local test setup: run your notebooks (PSET4_PS.ipynb, PSET4_Classification.ipynb, PSET4_Analytical.ipynb)
from the folder above this one, without Jupyter, and draw figures off screen.

The data: set DATA_ROOT to the folder holding pmsData/ and cifar-10-batches-py/, or keep them in ./data next to
the notebooks. Tests that need data are skipped when none is found.
"""
import os
import sys
from pathlib import Path

os.environ["MPLBACKEND"] = "Agg"
import matplotlib  # noqa: E402

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

ASSIGNMENT_DIR = Path(__file__).resolve().parent.parent
REPO = ASSIGNMENT_DIR.parent.parent
if (REPO / "grader" / "notebook.py").is_file() and str(REPO) not in sys.path:
    sys.path.append(str(REPO))


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")
    yield
    plt.close("all")
