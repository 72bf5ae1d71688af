import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHONUNBUFFERED", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CIFAR_SMALL = ROOT.parent / "shared" / "datasets" / "cifar10-small"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Keep caches, settings and downloads of every test away from the user's home."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SSLWB_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("SSLWB_DATA_DIR", str(base / "tvdata"))
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("SSLWB_ANALYSIS_WARMUP", "0")  # the window's analysis process skips the UMAP warm-up


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks on a shared CPU: one torch thread is faster than two fighting over it.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def cifar_small():
    if not CIFAR_SMALL.exists():
        pytest.skip(f"{CIFAR_SMALL} is not on this machine")
    return CIFAR_SMALL
