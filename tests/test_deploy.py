"""deploy/: the systemd unit and the configuration it names (docs/operations.md, "Running as a
service"). The unit is verified by systemd itself, and its two command lines are run: the
ExecStartPre check and the ExecStart run, with only the paths of this machine put in."""
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FLOWOS_RUN, unique_prefix
from flowos.configuration import config as configuration

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT = DEPLOY / "flowos.service"
INSTALLED_RUN = "/opt/flowos/bin/flowos-run"
CONFIG = "/etc/flowos/flowos.yaml"
STATS = "/var/lib/flowos/stats.json"


def unit_commands():
    """{key: argv} of the unit's ExecStartPre and ExecStart."""
    commands = {}
    for line in UNIT.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("ExecStartPre", "ExecStart"):
            commands[key] = shlex.split(value)
    return commands


def here(argv, config, stats, prefix):
    """The command as it runs on this machine: this flowos-run, a config and stats file of the
    test's, a file prefix of its own (the suite's runs share the machine)."""
    swap = {INSTALLED_RUN: FLOWOS_RUN, CONFIG: str(config), STATS: str(stats), "flowos": prefix}
    return [swap.get(arg, arg) for arg in argv]


def test_systemd_verifies_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze (Debian: systemd)")
    unit = tmp_path / "flowos.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_RUN, FLOWOS_RUN))   # it checks the binary exists
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # An unknown key or a bad value is only a warning: exit 0, a line on stderr.
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


def test_the_unit_runs_the_check_then_flowos_run_with_the_layout(tmp_path):
    commands = unit_commands()
    pre, start = commands["ExecStartPre"], commands["ExecStart"]
    assert pre[:2] == [INSTALLED_RUN, "--check"] and start[0] == INSTALLED_RUN
    for argv in (pre, start):
        assert argv[argv.index("-c") + 1] == CONFIG and argv[argv.index("--stats-json") + 1] == STATS
    assert pre[2:] == [arg for arg in start[1:] if arg != "--no-dashboard"]   # the check is of the same run
    config = tmp_path / "flowos.yaml"
    config.write_text("ports: [{name: lan, vdev: net_null0}, {name: wan, vdev: net_null1}]\n"
                      "flows: [{name: all, pipeline: [counter]}]\neal: {memory: no-huge}\n")
    stats, prefix = tmp_path / "stats.json", unique_prefix()
    check = subprocess.run(here(pre, config, stats, prefix), capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert check.returncode == 0 and "flowos-run: check passed" in check.stdout, check.stdout + check.stderr
    run = subprocess.run(here(start, config, stats, prefix) + ["--duration", "1"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    assert stats.exists()


def test_the_bundled_configuration_reads(tmp_path):
    """deploy/flowos.yaml reads as a configuration (its NICs are the box's, not this machine's)."""
    cfg = configuration.load(DEPLOY / "flowos.yaml")
    assert [(p.name, p.kind) for p in cfg.ports] == [("lan", "pci"), ("wan", "pci")]
    assert [f.name for f in cfg.flows] == ["all"]
