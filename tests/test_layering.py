"""The package's layers (docs/architecture.md, "The package"): the applications on top, then the
runtime, the configuration, the user API, and errors and the fast path's facts at the bottom; no import cycle
in any package; the configuration and the user API never import the compiled boundary, with no
exception (what needs this machine's DPDK is checked by flowos.runtime.machine). import-linter
checks the Python modules against pyproject.toml's contracts; it cannot see the compiled modules
(an import of flowos.boundary._runtime or flowos.cprocessor is invisible to it), so their imports,
and who imports them, are read from the sources here."""
import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flowos"
COMPILED = ("flowos.boundary", "flowos.cprocessor")
# Modules below the compiled boundary: they never import it, so that the configuration and the
# user API can be read, checked and tested without DPDK.
BELOW_BOUNDARY = ("flowos.configuration", "flowos.builtins", "flowos.processor", "flowos.message_desk", "flowos.errors",
                  "flowos.facts")
# What the compiled modules may import: the C declarations, one another, and the bottom layers.
COMPILED_MAY_IMPORT = ("flowos.includes", "flowos.boundary", "flowos.cprocessor", "flowos.processor",
                       "flowos.message_desk", "flowos.errors", "flowos.facts")
IMPORT = re.compile(r"^\s*(?:from\s+(flowos[\w.]*)\s+c?import\s+\(?([\w\s,*]+)|c?import\s+(flowos[\w.]*))", re.M)


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path):
    """The flowos modules (or packages) a source file imports, lazily or not."""
    text = path.read_text()
    if path.suffix == ".py":
        found = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowos"):
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("flowos")}
        return found
    found = set()
    for module, names, plain in IMPORT.findall(text):
        found.add(module or plain)
        found |= {f"{module}.{name.strip()}" for name in names.split(",") if module and name.strip()}
    return found


def within(module, prefixes):
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def sources(suffixes):
    return [p for p in sorted(PACKAGE.rglob("*")) if p.suffix in suffixes]


def test_python_modules_keep_the_layers_and_have_no_cycles():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (requirements-dev.txt)")
    done = subprocess.run([lint, "--no-cache", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in done.stdout, done.stdout[-2000:]


def test_the_layers_below_the_boundary_never_import_it():
    upward = sorted(f"{module_name(path)} imports {target}" for path in sources({".py"})
                    if within(module_name(path), BELOW_BOUNDARY)
                    for target in imported(path)
                    if within(target, COMPILED))
    assert not upward, "\n".join(upward)


def test_reading_a_configuration_loads_no_compiled_module(tmp_path):
    """What the import checks stand for: a configuration with a capture to replay and a Python
    processor is read and checked (config.finish) without loading the compiled boundary (the
    machine's part, flowos.runtime.machine, comes after, in the runtime)."""
    config = tmp_path / "box.yaml"
    config.write_text(f"ports: [{{name: a, vdev: 'net_pcap0,rx_pcap={ROOT / 'tests/data/udp_echo.pcap'}'}}]\n"
                      "flows: [{name: all, pipeline: [counter, {pyprocs.faults:Strict: {threshold: 5}},\n"
                      "                               {flow_log: {path: log.jsonl}}]}]\n")
    script = ("import sys\nfrom flowos.configuration import config\n"
              f"cfg = config.finish(config.load({str(config)!r}))\n"
              "assert [spec.name for spec in cfg.flows[0].stages[1]] == ['pyprocs.faults:Strict']\n"
              f"print(sorted(m for m in sys.modules if m.startswith({COMPILED!r})))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", done.stdout


def test_the_compiled_modules_import_only_what_is_below_them():
    """The boundary (.pyx) and the C declarations (.pxd) import and cimport only declarations,
    each other, and the bottom layers: never the configuration, the runtime or the applications."""
    upward = sorted(f"{path.relative_to(ROOT)} imports {target}" for path in sources({".pyx", ".pxd", ".pxi"})
                    for target in imported(path) if target != "flowos" and not within(target, COMPILED_MAY_IMPORT))
    assert not upward, "\n".join(upward)
    declarations = sorted(f"{path.relative_to(ROOT)} cimports {target}" for path in (PACKAGE / "includes").glob("*.pxd")
                          for target in imported(path) if not within(target, ("flowos.includes",)))
    assert not declarations, "\n".join(declarations)


def test_the_checks_see_imports(tmp_path):
    """The readers above find what they must: a lazy import inside a function, a cimport."""
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from flowos.boundary import _engine\n")
    assert "flowos.boundary._engine" in imported(lazy)
    cython = tmp_path / "c.pyx"
    cython.write_text("from flowos.includes.fo cimport (fo_worker,\n    fo_burst_hook_t)\nfrom flowos.runtime import runner\n")
    assert {"flowos.includes.fo.fo_worker", "flowos.includes.fo.fo_burst_hook_t", "flowos.runtime.runner"} <= imported(cython)


def test_every_module_of_the_sources_is_installed():
    """flowos/meson.build names each file it installs: a module missing there is missing from
    every installed FlowOS, though the source tree has it."""
    import flowos
    installed = Path(flowos.__file__).resolve().parent
    if installed == PACKAGE:
        pytest.skip("flowos is imported from the sources, not from an installation")
    missing = sorted(str(path.relative_to(PACKAGE)) for path in sources({".py", ".pxd"})
                     if not (installed / path.relative_to(PACKAGE)).is_file())
    compiled = sorted(str(path.relative_to(PACKAGE)) for path in sources({".pyx"})
                      if not list((installed / path.relative_to(PACKAGE)).parent.glob(path.stem + ".*.so")))
    assert not missing and not compiled, f"not installed: {missing + compiled}"
