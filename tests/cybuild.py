"""Builds a meson project of Cython processors the way a user of the installed FlowOS would
(numpy's test_extending does the same for numpy.random): tests/test_cython_processors.py builds
the example and tests/cyprobe, tests/test_workers_e2e.py builds tests/cyprobe."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
CYPROBE = Path(__file__).parent / "cyprobe"


def meson_build(source, root):
    """Copies a meson project of Cython processors to root/src and builds it in root/build with
    the venv's meson, cython and python, as a user of the installed FlowOS would."""
    src, build = root / "src", root / "build"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("build", "*.pcap", "*.json"))
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for argv in ([str(VENV_BIN / "meson"), "setup", str(build), str(src)],
                 [str(VENV_BIN / "meson"), "compile", "-C", str(build)]):
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    return build
