"""The fast path is one shared library that every extension module links: a process that loads
them all maps one copy of it (one set of metadata offsets, one registry), from the installed
package. And the processors benchmark, whose pybench links the build folder's library, checks
that the installed package is that build, file by file, by the build's own install record."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import bench  # noqa: E402

COMPILED = ("flowos.boundary._runtime", "flowos.boundary._engine", "flowos.boundary._control",
            "flowos.boundary._python", "flowos.boundary._decode", "flowos.cprocessor")
MAPPED = f"""
import importlib, json
modules = [importlib.import_module(name) for name in {COMPILED!r}]
with open("/proc/self/maps") as maps:
    paths = {{line.split()[-1] for line in maps if "libflowos_fast" in line}}
print(json.dumps({{"library": sorted(paths), "modules": [m.__file__ for m in modules]}}))
"""


def test_every_extension_module_shares_one_copy_of_the_fast_path():
    done = subprocess.run([sys.executable, "-P", "-c", MAPPED], cwd="/", capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    import flowos
    boundary = Path(flowos.__file__).resolve().parent / "boundary"
    assert loaded["library"] == [str(boundary / "libflowos_fast.so")]
    for module in loaded["modules"]:
        needed = subprocess.run(["readelf", "-d", module], capture_output=True, text=True, check=True).stdout
        assert "Shared library: [libflowos_fast.so]" in needed, module


def test_the_processors_benchmark_accepts_this_checkouts_build():
    if not (bench.BUILD / "meson-info" / "intro-installed.json").exists():
        pytest.skip(f"{bench.BUILD} is not built (scripts/setup)")
    bench.check_same_build()


def test_the_processors_benchmark_names_an_installed_file_unlike_its_build(tmp_path, monkeypatch):
    if not (bench.BUILD / "meson-info" / "intro-installed.json").exists():
        pytest.skip(f"{bench.BUILD} is not built (scripts/setup)")
    build = tmp_path / "build"
    (build / "meson-info").mkdir(parents=True)
    (build / "benchmarks").mkdir()
    (build / "benchmarks" / bench.pybench_modules().name).write_bytes(b"")
    other = build / "_engine.so"
    other.write_bytes(b"another build")
    record = {str(other): "/usr/local/lib/python3.11/site-packages/flowos/boundary/"
                          + next(Path(bench.BUILD / "flowos").glob("_engine*.so")).name}
    (build / "meson-info" / "intro-installed.json").write_text(json.dumps(record))
    monkeypatch.setattr(bench, "BUILD", build)
    with pytest.raises(bench.BenchError, match=r"differ \(boundary/_engine"):
        bench.check_same_build()
