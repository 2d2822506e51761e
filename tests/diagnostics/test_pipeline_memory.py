"""md-diagnose hands freed dask chunks back to the system (glibc's fixed mmap/trim thresholds)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHURN = """
import sys, numpy as np, psutil
from diagnostics.pipeline import return_freed_chunks
if sys.argv[1] == "fixed":
    assert return_freed_chunks()
np.ones(8 * 2**20 // 8)  # an 8 MiB block made and freed: glibc's dynamic mmap threshold rises to it
rss0 = psutil.Process().memory_info().rss
chunks = [np.ones(4 * 2**20 // 8) for _ in range(100)]  # 100 chunks of 4 MiB
last = chunks.pop()
del chunks  # all but the last freed: on the heap, the last one keeps the rest from being trimmed
print((psutil.Process().memory_info().rss - rss0) / 2**20)
"""


def _held_mib(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_chunks_go_back_to_the_system():
    # glibc's default keeps ~400 MiB of the 396 MiB freed; once in a full parallel suite run it
    # kept none (its dynamic threshold is process-history dependent): the largest of 3 tries
    held = 0.0
    for _ in range(3):
        held = max(held, _held_mib("default"))
        if held > 300:
            break
    assert held > 300
    assert _held_mib("fixed") < 40  # only the 4 MiB still in use (and noise)
