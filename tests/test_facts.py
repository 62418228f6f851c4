"""flowos/facts.py states what Python knows of the fast path (limits, enum names in C order) once;
the build compiles its assertions against the C headers. Here: they compile as the headers are,
and a fact that differs from its header stops the compile, naming it."""
import shutil
import subprocess

import pytest

from asanbuild import ROOT, pkg_config
from flowos import facts


def compile_assertions(tmp_path, text):
    cc, cflags = shutil.which("cc"), pkg_config("--cflags", "libdpdk")
    if cc is None or cflags is None:
        pytest.skip("needs cc and libdpdk known to pkg-config")
    source = tmp_path / "facts_check.c"
    source.write_text(text)
    return subprocess.run([cc, "-fsyntax-only", "-std=gnu11", "-I", str(ROOT / "ext" / "include"), *cflags, str(source)],
                          capture_output=True, text=True, timeout=120)


def test_the_facts_are_the_headers(tmp_path):
    done = compile_assertions(tmp_path, facts.c_assertions())
    assert done.returncode == 0, done.stderr[-3000:]
    text = facts.c_assertions()
    assert "FO_LEVEL_PAYLOAD == 3" in text and "FO_END_RELOAD == 4" in text and "FO_MAX_DEFS == 1024" in text


@pytest.mark.parametrize("name, changed", [
    ("VERDICTS", ("pass", "drop", "modified", "hold", "redirect")),   # two swapped
    ("END_REASONS", facts.END_REASONS[:-1]),                          # one missing
    ("MAX_STAGES", facts.MAX_STAGES + 1),
])
def test_a_fact_unlike_its_header_stops_the_build(tmp_path, monkeypatch, name, changed):
    monkeypatch.setattr(facts, name, changed)
    done = compile_assertions(tmp_path, facts.c_assertions())
    assert done.returncode != 0
    assert f"flowos/facts.py: {name}" in done.stderr or f"flowos/facts.py: len({name})" in done.stderr
