"""md-diagnose hands freed dask chunks back to the system (glibc's fixed mmap/trim thresholds)."""

from __future__ import annotations

import os
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
    # without glibc's MALLOC_* variables: any of them switches its dynamic mmap threshold off
    # (dask.distributed sets MALLOC_TRIM_THRESHOLD_ in os.environ for its workers, seen by later tests)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", CHURN, mode], check=True, capture_output=True, text=True, env=env)
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_chunks_go_back_to_the_system():
    assert _held_mib("default") > 300  # glibc's default keeps ~400 MiB of the 396 MiB freed
    assert _held_mib("fixed") < 40  # only the 4 MiB still in use (and noise)
