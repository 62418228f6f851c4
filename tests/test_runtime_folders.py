"""Each flowos-run removes the DPDK runtime folder of its file prefix (<runtime base>/<prefix>),
whether it ran or failed to start. (The suite also checks, at its end, that no test left one:
conftest.runtime_folders_are_removed.)"""
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import FLOWOS_RUN, runtime_folder, unique_prefix


@pytest.mark.parametrize("args, error", [
    # The EAL makes the folder early, then refuses the arguments.
    (["--vdev", "net_null0", "--eal-arg=--in-memory"], "DPDK EAL start-up failed"),
    # The EAL starts; the port cannot be found (its driver refused the vdev).
    (["--vdev", "net_af_packet0,iface=lo,framecnt=0"], "no port for device"),
    (["--vdev", "net_null0", "--duration", "0.2"], None),
], ids=["eal-fails", "port-fails", "runs"])
def test_a_run_leaves_no_runtime_folder(tmp_path, args, error):
    prefix = unique_prefix()
    done = subprocess.run([FLOWOS_RUN, "--no-dashboard", "--memory", "no-huge", "--file-prefix", prefix, *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    if error is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == 1 and error in done.stderr, done.stderr
        Path(tempfile.gettempdir(), f"{prefix}.log").unlink()    # kept by a failed start: it is named
    assert not runtime_folder(prefix).exists()
