"""What processors write (print to stdout and stderr, self.log) goes where the user sent it, each
line whole and in order with FlowOS's own lines, with and without the dashboard
(tests/pyprocs/chatty.py numbers its lines in the order it writes them)."""
import os
import pty
import re
import subprocess
import sys
import threading

import pytest

from conftest import DATA, FLOWOS_RUN, unique_prefix

TESTS = DATA.parent
LINES = 30                       # Chatty's lines per stream in its first call, after one in setup()
SAID = 3 * (LINES + 1)           # lines it writes in all: stdout, stderr and log in turn
CHATTY = re.compile(r"chatty (\d+) (stdout|stderr|log) \.{200}$")


@pytest.fixture(autouse=True)
def pyprocs_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


def argv(*extra, vdev_args=""):
    return [FLOWOS_RUN, "--file-prefix", unique_prefix(), "--memory", "no-huge", "--processor",
            "pyprocs.chatty:Chatty", "--vdev", f"net_pcap0,rx_pcap={DATA}/mixed.pcap,tx_pcap=/dev/null{vdev_args}",
            *extra]


def chatty(lines):
    """(number, stream) of each of Chatty's lines, in file order; a line of it not whole fails."""
    out = []
    for line in lines:
        if re.search(r"chatty \d|\.{5}", line):   # one of Chatty's lines, or a piece of one
            match = CHATTY.search(line)
            assert match, f"a line of Chatty's is not whole: {line!r}"
            if match[2] == "log":
                assert line.startswith("flowos: pyprocs.chatty:Chatty INFO: "), line
            out.append((int(match[1]), match[2]))
    return out


def expected(*streams):
    where = ("stdout", "stderr", "log")
    return [(n, where[(n - 1) % 3]) for n in range(1, SAID + 1) if where[(n - 1) % 3] in streams]


def index(lines, pattern):
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def test_no_dashboard_stdout_and_stderr_files_get_their_lines_after_the_banner(tmp_path):
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        subprocess.run(argv("--no-dashboard"), stdout=out, stderr=err, cwd=tmp_path, timeout=60)
    out, err = (tmp_path / "out").read_text().splitlines(), (tmp_path / "err").read_text().splitlines()
    assert chatty(out) == expected("stdout")
    assert chatty(err) == expected("stderr", "log")
    # FlowOS's banner first, its summary last; its fault report after the lines written before the fault
    assert index(out, "^flowos: memory") < index(out, r"^chatty 1 ")
    assert index(out, "FlowOS summary") > index(out, rf"^chatty {SAID - 2} ")
    assert index(err, "on purpose") > index(err, rf"chatty {SAID} ")


def test_a_worker_process_lines_reach_the_run_whole_and_after_the_banner(tmp_path):
    """A worker process's processor writes as an in-process one does: the primary passes its
    stdout and stderr on, line by line, into its own line writers, and its log records go to its
    stderr with FlowOS's format."""
    from flowos.runtime import hugepages
    if hugepages.choose("auto", 256).mode != "hugepages":
        pytest.skip("worker processes need hugepages (scripts/hugepages)")
    (tmp_path / "always.yaml").write_text("run: {worker_processes: always}\nengine: {capacity: 4096}\n"
                                          "pool: {mbufs: 16383}\n")
    args = [a if a != "no-huge" else "hugepages" for a in argv("--no-dashboard", "-c", str(tmp_path / "always.yaml"))]
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        subprocess.run(args, stdout=out, stderr=err, cwd=tmp_path, timeout=120)
    out, err = (tmp_path / "out").read_text().splitlines(), (tmp_path / "err").read_text().splitlines()
    assert chatty(out) == expected("stdout"), out
    assert chatty(err) == expected("stderr", "log"), err
    assert index(out, "^flowos: memory") < index(out, r"^chatty 1 ")
    assert index(out, "FlowOS summary") > index(out, rf"^chatty {SAID - 2} ")


def test_no_dashboard_one_file_for_both_keeps_every_line_whole_and_in_order(tmp_path):
    with open(tmp_path / "both", "w") as both:
        subprocess.run(argv("--no-dashboard"), stdout=both, stderr=subprocess.STDOUT, cwd=tmp_path, timeout=60)
    lines = (tmp_path / "both").read_text().splitlines()
    assert chatty(lines) == expected("stdout", "stderr", "log")
    assert index(lines, "^flowos: memory") < index(lines, "chatty 1 ")
    assert index(lines, "on purpose") > index(lines, f"chatty {SAID} ")
    assert index(lines, "FlowOS summary") > index(lines, "on purpose")


def test_dashboard_on_a_terminal_leaves_redirected_stderr_in_its_file(tmp_path):
    """stdout is a terminal (the dashboard draws on it), stderr a file: the file gets stderr."""
    master, slave = pty.openpty()
    drawn = []

    def drain():   # a pty's buffer is small: read while the dashboard draws
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:   # the other end closed
                return
            if not data:
                return
            drawn.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    env = dict(os.environ, COLUMNS="80", LINES="40", TERM="xterm")
    with open(tmp_path / "err", "w") as err:
        # replayed for a second: long enough for the dashboard to be drawn
        subprocess.run(argv("--duration", "1", vdev_args=",infinite_rx=1"), stdin=subprocess.DEVNULL, stdout=slave, stderr=err, cwd=tmp_path, env=env, timeout=60)
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    err = (tmp_path / "err").read_text().splitlines()
    assert chatty(err) == expected("stderr", "log")
    assert any("on purpose" in line for line in err)
    terminal = b"".join(drawn).decode(errors="replace")
    assert "engine drops" in terminal   # the dashboard was drawn there
    assert [int(n) for n in re.findall(r"chatty (\d+) stdout", terminal)] == [n for n, _ in expected("stdout")]
    assert "stderr ...." not in terminal and " log ...." not in terminal


def test_line_writer_sends_each_threads_lines_whole():
    """Threads writing lines in small pieces at once: every line sent is one thread's, whole; a
    line not ended is sent at the end."""
    from flowos.runtime.output import LineWriter
    sent = []
    writer = LineWriter(None, sent.append)

    together = threading.Barrier(2)

    def talk(name):
        together.wait()
        for i in range(2000):
            for piece in (name, " ", str(i), " ", "x" * 50, "\n"):
                writer.write(piece)

    threads = [threading.Thread(target=talk, args=(name,)) for name in ("left", "right")]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # the threads take turns between pieces
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    writer.write("no newline")
    writer.finish()
    lines = "".join(sent).splitlines()
    assert lines[-1] == "no newline"
    for name in ("left", "right"):
        assert [line for line in lines if line.startswith(name)] == [f"{name} {i} {'x' * 50}" for i in range(2000)]
    assert len(lines) == 4001
