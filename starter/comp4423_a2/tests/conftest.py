"""Local test setup: import your Raysampling.py, volume_rendering.py and dcnn.py from the folder above
this one, and draw figures off screen (no window opens)."""
import os
import sys
from pathlib import Path

os.environ["MPLBACKEND"] = "Agg"
import matplotlib  # noqa: E402

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

ASSIGNMENT_DIR = Path(__file__).resolve().parent.parent
if str(ASSIGNMENT_DIR) in sys.path:
    sys.path.remove(str(ASSIGNMENT_DIR))
sys.path.insert(0, str(ASSIGNMENT_DIR))


@pytest.fixture(autouse=True)
def _close_figures():
    """Each test starts and ends with no open figure."""
    plt.close("all")
    yield
    plt.close("all")
