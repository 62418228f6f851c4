"""What a worker process says on its pipe reaches every reader (flowos.runtime.worker_processes.Said):
each reader used to take what it read, so a restarted process's "ready" and "left" coming in one
read would leave "left" with the reader of "ready", and the primary would never tell the process
it could end (a race found by reading the code; the failures seen in the suite had another cause,
test_worker_processes.py's restart under a monitor)."""
import os
import threading
import time

from flowos.runtime.worker_processes import Said


def pipe():
    read, write = os.pipe()
    return Said(read), write


def test_lines_that_come_in_one_read_are_all_kept():
    said, write = pipe()
    os.write(write, b"built 1 2 3\nready\nleft\n")
    assert said.read() == ["built 1 2 3", "ready", "left"]
    assert "left" in said.read()          # a later reader still finds it
    os.close(write)


def test_a_line_cut_between_reads_is_whole_once_its_end_comes():
    said, write = pipe()
    os.write(write, b"ready 1 2")
    assert said.read() == []
    os.write(write, b" 3\nle")
    assert said.read() == ["ready 1 2 3"]
    os.write(write, b"ft\n")
    assert said.read() == ["ready 1 2 3", "left"]
    os.close(write)


def test_first_waits_for_a_line_and_says_nothing_once_the_process_ended():
    said, write = pipe()
    threading.Timer(0.2, lambda: os.write(write, b"ready 4 5 6\n")).start()
    assert said.first(30) == "ready 4 5 6"
    quiet, end = pipe()
    os.close(end)
    started = time.monotonic()
    assert quiet.first(30) == "" and quiet.closed and time.monotonic() - started < 5
    silent, _ = pipe()
    assert silent.first(0.1) == ""
    os.close(write)


def test_a_reload_answer_is_taken_once_and_the_other_lines_stay():
    """flowos.runtime.process_reload takes its answers off the pipe's lines: a box reloaded for months
    keeps no answer of each; the lines other readers look for stay."""
    said, write = pipe()
    os.write(write, b"ready 1 2 3\nreload 7 prepare ok 0\nleft\n")
    assert said.take("reload 8 prepare ") is None
    assert said.take("reload 7 prepare ") == "ok 0"
    assert said.take("reload 7 prepare ") is None
    assert said.read() == ["ready 1 2 3", "left"]
    os.close(write)


def test_a_command_pipe_gives_each_line_once_in_order():
    """A worker process's stdin (the primary's "go", reloads, "read no more"): new_lines and
    next_line hand each line to its one reader once; next_line says "" once the writer is gone."""
    said, write = pipe()
    os.write(write, b"go\nprepare 1 /x\ncommit 1 0\n")
    assert said.next_line() == "go"
    assert said.new_lines(0.0) == ["prepare 1 /x", "commit 1 0"]
    assert said.new_lines(0.0) == []
    os.write(write, b"read no more\n")
    os.close(write)
    assert said.next_line() == "read no more"
    started = time.monotonic()
    assert said.next_line() == "" and time.monotonic() - started < 5
    said.close()
    assert said.fd is None and said.read() == ["go", "prepare 1 /x", "commit 1 0", "read no more"]
