"""FlowOS's test kit, and a pytest plugin (installed with FlowOS; pytest loads it by itself):
test your own processors the way FlowOS tests its own (docs/testing.md, "Testing your own
processors").

Fixtures:
    flowos_pipeline   run_pipeline with its files kept in the test's tmp_path: a pipeline over
                      scapy packets or a capture, with the output packets, the verdict of each
                      flow and the statistics back
    flowos_wire       a netns.Wire: client and server network namespaces with FlowOS between
                      them, for real TCP (needs root; the test skips without)

The same, without pytest: flowos.testing.run_pipeline, flowos.testing.netns.Wire. What needs
scapy (the test extra: pip install '.[test]') is imported when first used, so that the plugin
costs nothing in a pytest run that does not use it.
"""
import functools
import importlib

import pytest

# name -> the module that defines it, imported on first use
_LAZY = {
    "run_pipeline": "pipeline", "PipelineResult": "pipeline", "FlowResult": "pipeline",
    "PipelineFailed": "pipeline", "write_pcap": "pcap", "read_pcap": "pcap", "Run": "runs",
    "run_flowos": "runs", "start_flowos": "runs", "kill_flowos": "runs",
}
__all__ = sorted(_LAZY) + ["netns"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"flowos.testing.{_LAZY[name]}"), name)
    if name == "netns":
        return importlib.import_module("flowos.testing.netns")
    raise AttributeError(f"module 'flowos.testing' has no attribute {name!r}")


@pytest.fixture
def flowos_pipeline(tmp_path):
    """run_pipeline(packets, pipeline=..., ...), keeping the capture, the config, the output and
    the statistics of each run in the test's tmp_path."""
    from flowos.testing.pipeline import run_pipeline
    return functools.partial(run_pipeline, workdir=tmp_path)


@pytest.fixture
def flowos_wire():
    """A created netns.Wire: client and server namespaces joined through a third (the box), where
    wire.start_flowos(tmp_path=...) runs flowos-run between them. Everything it made is removed
    afterwards, whatever the test did. Skips where namespaces cannot be made (not root, no
    iproute2, ethtool or ping)."""
    from flowos.testing import netns
    reason = netns.can_create_namespaces()
    if reason:
        pytest.skip(reason)
    with netns.Wire() as wire:
        yield wire
