"""Hugepages of both sizes (flowos/runtime/hugepages.py): 1 GB pages found where the kernel has them, their
hugetlbfs mounts told apart from 2 MB ones, and used when 2 MB pages fall short. Nothing here
reserves pages."""
import subprocess
import sys
from pathlib import Path

import pytest

from flowos.runtime import hugepages
from flowos.errors import FlowOSError

ONE_GB_SYSFS = Path("/sys/kernel/mm/hugepages/hugepages-1048576kB")


def test_1g_pages_are_found_where_the_kernel_has_them():
    assert ("1G" in hugepages.supported_sizes()) == ONE_GB_SYSFS.is_dir()
    assert "2M" in hugepages.supported_sizes()
    if ONE_GB_SYSFS.is_dir():
        state = hugepages.probe("1G")
        assert (state.total, state.free, state.page_mb) == (int((ONE_GB_SYSFS / "nr_hugepages").read_text()),
                                                             int((ONE_GB_SYSFS / "free_hugepages").read_text()), 1024)


def test_status_tells_both_sizes():
    done = subprocess.run([sys.executable, "-P", "-m", "flowos.runtime.hugepages", "--status"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["hugepages 2M", "hugepages 1G"]
    if not ONE_GB_SYSFS.is_dir():
        assert lines[1] == "hugepages 1G: not supported here"
    else:
        assert lines[1] == hugepages.describe(hugepages.probe("1G"), "1G")


def test_mounts_are_told_apart_by_page_size(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n"
                      "nodev /mnt/huge1g hugetlbfs rw,relatime,pagesize=1024M 0 0\n")
    assert hugepages._hugetlbfs_mount(2, str(mounts)) == "/dev/hugepages"
    assert hugepages._hugetlbfs_mount(1024, str(mounts)) == "/mnt/huge1g"
    mounts.write_text("nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n")
    assert hugepages._hugetlbfs_mount(1024, str(mounts)) is None


def test_1g_pages_are_used_when_2m_pages_fall_short():
    two_mb = hugepages.HugepageState(100, 10, "/dev/hugepages")
    one_gb = hugepages.HugepageState(2, 2, "/dev/hugepages1G", 1024)
    chosen = hugepages.choose("auto", 300, [two_mb, one_gb])
    assert (chosen.mode, chosen.memory_mb, chosen.huge_dir) == ("hugepages", 1024, "/dev/hugepages1G")
    assert chosen.reason == "2 free 1 GB hugepages on /dev/hugepages1G"
    # 2 MB pages first, where they suffice
    assert hugepages.choose("auto", 10, [two_mb, one_gb]).huge_dir == "/dev/hugepages"


def test_too_few_pages_of_either_size_are_both_told():
    states = [hugepages.HugepageState(100, 10, "/dev/hugepages"), hugepages.HugepageState(1, 0, "/dev/hugepages1G", 1024)]
    with pytest.raises(FlowOSError, match=r"^hugepages asked for, but 10 free 2 MB hugepages, 150 needed; "
                                          r"0 free 1 GB hugepages, 1 needed \(run scripts/hugepages as root\)$"):
        hugepages.choose("hugepages", 300, states)
    chosen = hugepages.choose("auto", 300, [hugepages.HugepageState(0, 0, None), hugepages.HugepageState(0, 0, None, 1024)])
    assert chosen.mode == "no-huge" and chosen.reason.startswith("no hugetlbfs with 2 MB pages is mounted; scripts")


def test_reserving_a_size_the_machine_lacks_is_refused():
    if ONE_GB_SYSFS.is_dir():
        pytest.skip("this machine has 1 GB pages")
    with pytest.raises(FlowOSError, match="this machine has no 1G hugepages"):
        hugepages.reserve(1, "/dev/hugepages1G", "1G")


def test_the_scripts_run_the_installed_flowos_from_the_source_tree():
    """scripts/hugepages (and scripts/test, scripts/demo) run from the repository's root, where
    `python -m` would find the source tree's flowos first, which has no compiled modules: they
    run the installed one (-P). Before, scripts/test's hugepage step failed with an import error
    that its `||` turned into "no hugepages" on every fresh machine."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["bash", str(root / "scripts" / "hugepages"), "--status"], capture_output=True, text=True,
                          timeout=120, cwd=root)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stdout.startswith("hugepages 2M")
