"""The fast path's files form a stack (the order at the top of ext/src/fo_engine_priv.h): each file
uses only the files below it. Every file is compiled on its own and its undefined symbols (calls,
and data it reads, such as the metadata offsets) are looked up among the symbols the others
define: each must come from a file lower in the order. A call up the stack (a lower file running
the pipeline, sending through the engine) fails here, naming the file, the symbol and its file."""
import concurrent.futures
import os
import re
import shutil
import subprocess

import pytest

from asanbuild import ROOT, pkg_config

SRC = ROOT / "ext" / "src"
ORDER_HEADER = SRC / "fo_engine_priv.h"


def declared_order():
    """The files of the stack, top first, as the header lists them."""
    text = ORDER_HEADER.read_text()
    start = text.index("Layers, top first:")
    block = text[start:text.index("*/", start)]
    return re.findall(r"^ \*\s+(fo_\w+\.c)\b", block, re.M)


def sources():
    return sorted(SRC.glob("*.c")) + sorted((SRC / "processors").glob("*.c"))


def symbols(cc, cflags, src, out_dir):
    """(defined, undefined) global symbols of src compiled alone."""
    obj = out_dir / (src.stem + ".o")
    done = subprocess.run([cc, "-c", "-O0", "-std=gnu11", "-w", "-I", str(ROOT / "ext" / "include"), *cflags,
                           str(src), "-o", str(obj)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    listing = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "U":
            undefined.add(fields[1])
        elif len(fields) == 3 and fields[1] in "TDBRCGS":
            defined.add(fields[2])
    return defined, undefined


def test_the_order_names_every_file_once():
    order = declared_order()
    assert len(order) == len(set(order)), "a file is listed twice"
    assert sorted(order) == sorted(src.name for src in sources()), \
        "the layer order must place every file of ext/src (a new file goes where it belongs)"


def test_each_file_uses_only_files_below_it(tmp_path):
    cc, nm, cflags = shutil.which("cc"), shutil.which("nm"), pkg_config("--cflags", "libdpdk")
    if cc is None or nm is None or cflags is None:
        pytest.skip("needs cc, nm and libdpdk known to pkg-config")
    files = sources()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        found = dict(zip((f.name for f in files), pool.map(lambda f: symbols(cc, cflags, f, tmp_path), files)))
    owner = {symbol: name for name, (defined, _) in found.items() for symbol in defined}
    depth = {name: i for i, name in enumerate(declared_order())}   # 0 is the top
    upward = sorted(f"{name} uses {symbol} of {owner[symbol]}, which is not below it"
                    for name, (_, undefined) in found.items() for symbol in undefined
                    if symbol in owner and owner[symbol] != name and depth[owner[symbol]] <= depth[name])
    assert not upward, "\n".join(upward)
    # The check sees the calls: the engine uses the files below it.
    assert {owner[s] for s in found["fo_engine.c"][1] if s in owner} >= {"fo_pipeline.c", "fo_flow_table.c", "fo_send.c"}


INCLUDE = re.compile(r'^\s*#\s*include\s+"(?:flowos/)?([\w.]+\.h)"', re.M)


def headers():
    """Every header of the fast path: the public ones (ext/include/flowos) and the private ones."""
    return {h.name: h for h in [*(ROOT / "ext" / "include" / "flowos").glob("*.h"), *SRC.glob("*.h"),
                                *(SRC / "processors").glob("*.h")]}


def test_headers_include_no_cycle():
    """Headers include each other downward only: following includes from any header never comes
    back to it."""
    found = headers()
    includes = {name: set(INCLUDE.findall(path.read_text())) & set(found) for name, path in found.items()}
    done, on_path = set(), []

    def visit(name):
        assert name not in on_path, "include cycle: " + " -> ".join(on_path[on_path.index(name):] + [name])
        if name in done:
            return
        on_path.append(name)
        for included in sorted(includes[name]):
            visit(included)
        on_path.pop()
        done.add(name)

    for name in sorted(found):
        visit(name)


def test_each_file_includes_only_headers_of_files_below_it():
    """A source file includes its own header, the shared declarations (headers no file implements:
    fo_engine_priv.h, fo_processor.h, ...), and the headers of files below it in the stack: never
    the header of a file above it (fo_tx.h, whose file is near the bottom, may be included by all
    above it; fo_stream.h, the stream view's, only by files above fo_stream.c)."""
    depth = {name: i for i, name in enumerate(declared_order())}   # 0 is the top
    implemented = {name[:-2] + ".h": name for name in depth}
    upward = []
    for src in sources():
        for header in INCLUDE.findall(src.read_text()):
            owner = implemented.get(header)
            if owner is not None and owner != src.name and depth[owner] <= depth[src.name]:
                upward.append(f"{src.name} includes {header}, the header of {owner}, which is not below it")
    assert not upward, "\n".join(upward)
