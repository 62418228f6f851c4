"""SIGHUP to a supervised flowos-run (flowos/runtime/supervisor.py, docs/reload.md): the run reloads its
configuration file. One that comes before the run has its handlers in place (it would die of it)
is held and forwarded once it has started, not dropped: the file may have changed since the run
read it. Several held collapse into one reload."""
import mmap
import os
import signal
from types import SimpleNamespace

from flowos.runtime.supervisor import Watch


def test_a_sighup_before_the_run_started_is_forwarded_once_it_has(monkeypatch):
    sent = []
    monkeypatch.setattr(Watch, "_forward", lambda self, signum: sent.append(signum))
    read, write = os.pipe()
    cfg = SimpleNamespace(run=SimpleNamespace(call_budget_ms=300, duration=None))
    watch = Watch(cfg, os.getpid(), read, mmap.mmap(-1, mmap.PAGESIZE))
    try:
        signal.raise_signal(signal.SIGHUP)
        signal.raise_signal(signal.SIGHUP)
        assert sent == [] and watch.started_at is None
        watch.info = {"started": True}     # the run said it started: its handlers are in place
        watch.check_started()
        assert sent == [signal.SIGHUP]
        signal.raise_signal(signal.SIGHUP)
        assert sent == [signal.SIGHUP, signal.SIGHUP]
        assert watch.stop_reason is None     # a reload, not a stop
    finally:
        watch.restore()
        os.close(read)
        os.close(write)
