"""The flow index (ext/src/fo_flow_index.c: flow key -> flow id) against a model, in C under
AddressSanitizer and UBSan (tests/asan/flow_index_harness.c): random adds, deletes and lookups,
single and bulk, with real hashes and with hashes crowded into a few buckets that wrap around the
table; a full index refuses, and emptied it holds nothing; churn that leaves every bucket passed
does not make a lookup loop. The engine's own use of it is what the flow tests check
(tests/test_flows_*.py)."""
import pytest

import asanbuild


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flow_index_agrees_with_a_model(tmp_path, seed):
    exe = asanbuild.build(tmp_path, "flow_index_harness")
    run = asanbuild.run(exe, "--", str(seed), memory_mb=256, timeout=120)   # a lookup that never ends times out
    assert run.returncode == 0, run.stderr[-4000:]
    assert int(run.stdout) > 100000    # lookups checked
