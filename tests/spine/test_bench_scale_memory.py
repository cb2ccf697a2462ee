"""The scale benchmark's memory probe counts descendants (the Ray workers in a real run)."""

import subprocess
import sys
import time

from fedqnn.bench.scale import tree_pss_bytes


def test_tree_pss_counts_a_child_process_memory():
    before = tree_pss_bytes()
    code = "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ok', flush=True); import time; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ok"
        time.sleep(0.2)
        during = tree_pss_bytes()
    finally:
        child.kill()
        child.wait()
    assert during - before > 150 * 2**20
