"""FlowOS as a bump in the wire between two real Linux TCP stacks, for end-to-end tests.

    client namespace                 box namespace                    server namespace
    eth0 10.N.0.1/24  <-veth->  <tag>c ══ flowos-run ══ <tag>s  <-veth->  eth0 10.N.0.2/24
    fd0N::1/64                   (net_af_packet0)  (net_af_packet1)        fd0N::2/64

Both endpoints are in one subnet: FlowOS bridges the two box-side veth ends with net_af_packet
ports, so the client's ARP, ND and TCP all cross it. Every name carries the pid and a counter,
so tests run in parallel (pytest-xdist). flowos-run runs in a namespace of each wire's own (the
box), not the root namespace: DPDK 22.11's net_af_packet joins a PACKET_FANOUT group whose id,
(pid ^ ifindex) & 0xffff, is shared by every packet socket of a network namespace, and two
flowos-runs started at once in one namespace (close pids, consecutive ifindexes) picked the
same id in one run of the e2e set in two or three (the kernel refuses a group on a second
interface: EINVAL, "could not set PACKET_FANOUT"). `Wire` owns everything it creates —
namespaces, veths, qdiscs, processes — and `close()` removes it all, also after a failed test;
the `flowos_wire` fixture (flowos.testing's pytest plugin) calls it.

    def test_download(flowos_wire, tmp_path):
        box = flowos_wire.start_flowos(tmp_path=tmp_path)          # waits until a ping crosses it
        (tmp_path / "www").mkdir(); (tmp_path / "www/a.txt").write_text("hello")
        url = flowos_wire.http_server(tmp_path / "www").url("a.txt")          # ipv6=True: over IPv6
        assert flowos_wire.curl(url).body == b"hello"
        assert box.stop().stats["mbufs"]["in_use_at_exit"] == 0
"""
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from flowos.testing.runs import FLOWOS_RUN, Run, processor_env, remove_runtime_folder, unique_prefix

_wires = itertools.count()
# Offloads off on every veth end: with them on, the sender leaves TCP/UDP checksums to "the
# hardware" (CHECKSUM_PARTIAL) and af_packet reads frames whose checksums are not filled in;
# the receiver drops them. TSO/GSO/GRO off keep every frame at most one MTU.
OFFLOADS_OFF = ("tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off")
HTTP_PORT = 8000
IPERF_PORT = 5201
CURL_MARK = "@@curl@@"
# http_code is quoted: curl writes 000 when no response came, which is no JSON number.
CURL_INFO = CURL_MARK + ('{"http_code":"%{http_code}","size_download":%{size_download},'
                         '"num_connects":%{num_connects},"speed_download":%{speed_download},'
                         '"time_total":%{time_total}}\n')


class WireError(RuntimeError):
    """Something the harness needs did not happen (a namespace, a listener, a first ping)."""


class FlowOSExited(WireError):
    """flowos-run ended before it forwarded anything."""


def missing_tools(*tools):
    """The tools of `tools` that are not on PATH (for pytest.skip)."""
    return [t for t in tools if shutil.which(t) is None]


def can_create_namespaces():
    """None when this process can build the wire, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = missing_tools("ip", "ethtool", "tc", "ping", "ss")
    if missing:
        return f"missing {', '.join(missing)} (iproute2, ethtool, iputils-ping; scripts/setup installs them)"
    return None


def _run(argv, timeout=30, check=True, **kw):
    argv = [str(a) for a in argv]
    done = subprocess.run(argv, capture_output=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise WireError(f"{' '.join(map(str, argv))}: exit {done.returncode}: "
                        f"{done.stderr.decode(errors='replace').strip()}")
    return done


def _stop_process(proc, sig=signal.SIGTERM, timeout=5):
    """Ends one process we started, by its PID: sig, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


class Namespace:
    """One endpoint: a namespace whose veth `eth0` has `addr` (IPv4) and `addr6` (IPv6)."""

    def __init__(self, wire, name, addr, addr6):
        self.wire, self.name, self.addr, self.addr6 = wire, name, addr, addr6
        self.iface = "eth0"
        self.impairment = None  # what impair() installed: "netem", "htb+nft" or None

    def argv(self, *argv):
        return ["ip", "netns", "exec", self.name, *map(str, argv)]

    def run(self, *argv, timeout=30, check=True, **kw):
        """Runs a command in the namespace to completion; returns the CompletedProcess (bytes)."""
        return _run(self.argv(*argv), timeout=timeout, check=check, **kw)

    def popen(self, *argv, **kw):
        """Starts a command in the namespace; the wire ends it at close() if it still runs."""
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(self.argv(*argv), **kw)  # ip execs the command: same PID
        self.wire._processes.append(proc)
        return proc

    def wait_listening(self, port, proc=None, timeout=10, proto="t"):
        """Waits until something listens on TCP (proto "t") or UDP ("u") `port` here."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise WireError(f"{proc.args[4:]} exited with {proc.returncode} before listening: "
                                f"{proc.stderr.read().decode(errors='replace') if proc.stderr else ''}")
            out = self.run("ss", f"-Hln{proto}", f"sport = :{port}", check=False).stdout
            if out.strip():
                return
            time.sleep(0.05)
        raise WireError(f"{self.name}: nothing listens on port {port} after {timeout} s")

    def netem(self, *spec):
        """Impairs what leaves this endpoint: `tc qdisc replace ... root netem <spec>`, e.g.
        netem("delay", "10ms", "reorder", "25%", "loss", "2%"). Raises WireError where the kernel
        has no netem (CONFIG_NET_SCH_NETEM); impair() works either way."""
        self.run("tc", "qdisc", "replace", "dev", self.iface, "root", "netem", *spec)
        self.impairment = "netem"

    def impair(self, reorder=0.0, loss=0.0, duplicate=0.0, delay_ms=4):
        """Impairs what leaves this endpoint: a fraction `reorder` of the packets leaves out of
        order, `loss` is dropped and `duplicate` sent twice (fractions: 0.25 is 25 %).

        With netem: every packet is delayed by delay_ms but `reorder` of them, sent at once,
        ahead of the rest; netem's loss and duplicate. Kernels built without netem get the same
        effects from what they have ("htb+nft"): nftables on the veth's egress hook drops and
        duplicates at random, and a classic BPF filter sends a random `reorder` of the packets
        to an HTB class slowed to 20 Mbit/s, where they fall behind the rest. Returns which of
        the two it used. Removed by clear_impairment(), or with the namespace."""
        # One frame per packet handed down (no GSO aggregates), so that the fractions are of frames.
        self.run("ip", "link", "set", "dev", self.iface, "gso_max_segs", "1")
        pct = lambda f: f"{f * 100:g}%"
        netem = self.run("tc", "qdisc", "replace", "dev", self.iface, "root", "netem", "delay", f"{delay_ms}ms",
                         "reorder", pct(reorder), "50%", "loss", pct(loss), "duplicate", pct(duplicate),
                         check=False)
        if netem.returncode == 0:
            self.impairment = "netem"
            return self.impairment
        if b"qdisc kind is unknown" not in netem.stderr:
            raise WireError(f"tc qdisc ... netem: {netem.stderr.decode(errors='replace').strip()}")
        self.impairment = "htb+nft"
        rules = []
        if loss:
            rules.append(f"numgen random mod 10000 < {round(loss * 10000)} counter drop")
        if duplicate:
            rules.append(f"numgen random mod 10000 < {round(duplicate * 10000)} counter dup to {self.iface}")
        if rules:
            self.nft(f"table netdev impair {{\n chain egress {{\n"
                     f"  type filter hook egress device {self.iface} priority 0;\n"
                     + "".join(f"  {rule}\n" for rule in rules) + " }\n}\n")
        if reorder:
            dev = ("dev", self.iface)
            self.run("tc", "qdisc", "replace", *dev, "root", "handle", "1:", "htb", "default", "1")
            self.run("tc", "class", "add", *dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit")
            self.run("tc", "class", "add", *dev, "parent", "1:", "classid", "1:2", "htb", "rate", "20mbit",
                     "ceil", "20mbit")
            self.run("tc", "filter", "add", *dev, "parent", "1:", "bpf", "bytecode",
                     _random_class_bpf(reorder, chosen=0x10002, other=0x10001))
        return self.impairment

    def impairment_counts(self):
        """What the impairment did so far: {"dropped": packets lost, "duplicated": packets sent
        twice, "held_back": packets sent through the slow class}; netem counts only drops (the
        others are None)."""
        if self.impairment == "netem":
            text = self.qdisc_stats()
            return {"dropped": int(re.search(r"dropped (\d+)", text).group(1)), "duplicated": None,
                    "held_back": None}
        counts = {"dropped": 0, "duplicated": 0, "held_back": 0}
        table = self.run("nft", "-j", "list", "table", "netdev", "impair", check=False)
        for item in json.loads(table.stdout or b"{}").get("nftables", []):
            expr = item.get("rule", {}).get("expr", [])
            packets = next((e["counter"]["packets"] for e in expr if "counter" in e), 0)
            if any("drop" in e for e in expr):
                counts["dropped"] += packets
            if any("dup" in e for e in expr):
                counts["duplicated"] += packets
        classes = self.run("tc", "-s", "class", "show", "dev", self.iface).stdout.decode()  # no -j for classes
        slow = re.search(r"class htb 1:2 .*\n Sent \d+ bytes (\d+) pkt", classes)
        counts["held_back"] = int(slow.group(1)) if slow else 0
        return counts

    def clear_impairment(self):
        """Removes what impair() or netem() installed."""
        self.run("tc", "qdisc", "del", "dev", self.iface, "root", check=False)
        self.run("nft", "delete", "table", "netdev", "impair", check=False)
        self.impairment = None

    def nft(self, script):
        """Loads an nft script (`nft -f -`) in this namespace."""
        self.run("nft", "-f", "-", input=script.encode())

    def qdisc_stats(self):
        """`tc -s qdisc show` of this endpoint's veth, as text."""
        return self.run("tc", "-s", "qdisc", "show", "dev", self.iface).stdout.decode()

    def ping(self, dst, count=1, wait=1, timeout=10):
        """True when `count` pings to dst get answers."""
        six = ["-6"] if ":" in str(dst) else []
        return self.run("ping", *six, "-n", "-q", "-c", count, "-W", wait, dst,
                        check=False, timeout=timeout).returncode == 0


def _random_class_bpf(fraction, chosen, other):
    """Classic BPF for cls_bpf: classid `chosen` for a random `fraction` of packets, else
    `other`. ld the kernel's random number (SKF_AD_OFF + SKF_AD_RANDOM); jge; ret; ret."""
    threshold = min(int((1 - fraction) * 2**32), 2**32 - 1)
    code = [(0x20, 0, 0, 0xFFFFF000 + 56), (0x35, 0, 1, threshold), (0x06, 0, 0, chosen), (0x06, 0, 0, other)]
    return f"{len(code)}," + ",".join(" ".join(map(str, op)) for op in code)


@dataclass
class Fetched:
    returncode: int
    body: bytes
    stderr: str
    info: list  # one dict per transfer: curl's -w variables (http_code, size_download, num_connects, ...)


class HttpServer:
    """python3 -m http.server in the server namespace: HTTP/1.1 (connections stay open), on
    both of its addresses (it binds "::" dual-stack)."""

    def __init__(self, proc, namespace, port):
        self.proc, self.namespace, self.port = proc, namespace, port

    def url(self, path="", ipv6=False):
        host = f"[{self.namespace.addr6}]" if ipv6 else self.namespace.addr
        return f"http://{host}:{self.port}/{path}"

    def stop(self):
        _stop_process(self.proc)


class FlowOS:
    """A flowos-run started by Wire.start_flowos. stop() ends it with SIGINT (the clean stop)
    and returns a flowos.testing.runs.Run with its exit code, output and --stats-json."""

    def __init__(self, proc, stats_path, prefix):
        self.proc, self.stats_path, self.prefix = proc, stats_path, prefix
        self.run = None

    def stop(self, timeout=10):
        if self.run is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            try:
                out, err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
                remove_runtime_folder(self.prefix)     # it could not
            stats = json.loads(self.stats_path.read_text()) if self.stats_path.exists() else None
            self.run = Run(self.proc.returncode, out, err, stats)
        return self.run


class Wire:
    """Two namespaces, client and server, joined through a third, the box, by whatever bridges
    the box-side veth ends `left` (client side) and `right` (server side): FlowOS, normally.
    `subnet` picks 10.<subnet>.0.0/24 (default: from the pid and a counter); `port_args` are
    appended to both net_af_packet vdevs."""

    def __init__(self, subnet=None, mtu=1500, port_args="framecnt=4096"):
        n = next(_wires)
        pid = os.getpid()
        self.tag = f"fw{pid % 100000}x{n}"            # + "c"/"s": at most 15 characters
        third = subnet if subnet is not None else 100 + (pid * 7 + n) % 150
        self.client = Namespace(self, f"fo-{pid}-{n}-cli", f"10.{third}.0.1", f"fd00:{third:x}::1")
        self.server = Namespace(self, f"fo-{pid}-{n}-srv", f"10.{third}.0.2", f"fd00:{third:x}::2")
        self.box = Namespace(self, f"fo-{pid}-{n}-box", None, None)   # where flowos-run runs
        self.left, self.right = f"{self.tag}c", f"{self.tag}s"
        self.mtu = mtu
        # net_af_packet's default ring (512 frames) overflows under a bulk TCP transfer, and
        # the kernel's drops there reach no FlowOS counter; 4096 frames make them rare.
        self.port_args = port_args
        self._processes, self._flowos, self._created = [], [], []

    # -- building and tearing down -------------------------------------------------------------

    def create(self):
        """Builds both namespaces and veths; on any error removes what it made and raises."""
        try:
            _run(["ip", "netns", "add", self.box.name])
            self._created.append(self.box.name)
            for ns, box_end in ((self.client, self.left), (self.server, self.right)):
                _run(["ip", "netns", "add", ns.name])
                self._created.append(ns.name)
                self.box.run("ip", "link", "add", box_end, "mtu", self.mtu, "type", "veth",
                             "peer", "name", ns.iface, "mtu", self.mtu, "netns", ns.name)
                # Nothing of the box's own may cross FlowOS: no IPv6 on the box ends.
                self.box.run("sysctl", "-qw", f"net.ipv6.conf.{box_end}.disable_ipv6=1")
                self.box.run("ethtool", "-K", box_end, *OFFLOADS_OFF)
                self.box.run("ip", "link", "set", box_end, "up")
                ns.run("ethtool", "-K", ns.iface, *OFFLOADS_OFF)
                ns.run("ip", "addr", "add", f"{ns.addr}/24", "dev", ns.iface)
                ns.run("ip", "addr", "add", f"{ns.addr6}/64", "dev", ns.iface, "nodad")
                ns.run("ip", "link", "set", "lo", "up")
                ns.run("ip", "link", "set", ns.iface, "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        """Stops every process the wire started, then deletes its namespaces (which takes their
        veths and qdiscs). Idempotent; never raises for what is already gone."""
        for box in self._flowos:
            box.stop()
        for proc in reversed(self._processes):
            _stop_process(proc)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self._processes.clear()
        for name in reversed(self._created):
            _run(["ip", "netns", "del", name], check=False)
        self._created.clear()

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.close()

    # -- FlowOS between the two ----------------------------------------------------------------

    def vdevs(self):
        """The flowos-run arguments for the two ports: net_af_packet0 on the client side,
        net_af_packet1 on the server side (the zero-config bridge pairs them: 0 <-> 1)."""
        extra = f",{self.port_args}" if self.port_args else ""
        return ["--vdev", f"net_af_packet0,iface={self.left}{extra}",
                "--vdev", f"net_af_packet1,iface={self.right}{extra}"]

    def start_flowos(self, *args, tmp_path, config=None, memory="no-huge", env=None, wait=10):
        """Starts flowos-run (in the box namespace) on the two ports, with `config` (a YAML path,
        or a dict written to tmp_path) and extra `args`, in `env` (default: this process's, with
        what it imports from on PYTHONPATH, for processors); returns a FlowOS once a ping crosses it.
        If flowos-run exits first, raises FlowOSExited with its error and the tail of its DPDK
        log (which flowos-run keeps when it fails to start)."""
        tmp_path = Path(tmp_path)
        if isinstance(config, dict):
            import yaml
            path = tmp_path / f"flowos-{self.tag}-{len(self._flowos)}.yaml"
            path.write_text(yaml.safe_dump(config))
            config = path
        prefix = unique_prefix()
        stats_path = tmp_path / f"stats-{prefix}.json"
        argv = [FLOWOS_RUN, "--no-dashboard", "--file-prefix", prefix, "--memory", memory,
                "--stats-json", str(stats_path), *self.vdevs()]
        if config is not None:
            argv += ["-c", str(config)]
        argv += list(map(str, args))
        env = env if env is not None else processor_env()
        proc = subprocess.Popen(self.box.argv(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=tmp_path, env=env)  # ip execs flowos-run: same PID
        box = FlowOS(proc, stats_path, prefix)
        self._flowos.append(box)
        try:
            self.wait_forwarding(box, timeout=wait)
        except FlowOSExited as e:
            log = Path(tempfile.gettempdir(), f"{prefix}.log")
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no DPDK log)"
            raise FlowOSExited(f"{e}\nDPDK log {log}:\n{tail}") from None
        return box

    def wait_forwarding(self, box=None, timeout=10):
        """Waits until a ping from the client reaches the server and comes back."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if box is not None and box.proc.poll() is not None:
                run = box.stop()
                raise FlowOSExited(f"flowos-run exited with {run.returncode}: {run.stderr.strip()}")
            if self.client.ping(self.server.addr, wait=1):
                return
        raise WireError(f"no ping from {self.client.addr} to {self.server.addr} after {timeout} s")

    # -- traffic -------------------------------------------------------------------------------

    def http_server(self, directory, port=HTTP_PORT):
        """Serves `directory` from the server namespace, over IPv4 and IPv6; returns an
        HttpServer once it listens."""
        proc = self.server.popen(sys.executable, "-m", "http.server", port, "--bind", "::",
                                 "--directory", directory, "--protocol", "HTTP/1.1")
        self.server.wait_listening(port, proc)
        return HttpServer(proc, self.server, port)

    def curl(self, *urls, timeout=30, args=()):
        """Fetches `urls` with one curl from the client namespace (one connection, kept alive, when
        they share a server). Returns a Fetched: the bodies concatenated, curl's exit code, and per
        transfer its http_code, size_download, num_connects (0: the connection was reused), speed."""
        done = self.client.run("curl", "-sS", "--max-time", timeout, "-w", "%{stderr}" + CURL_INFO,
                               *args, *urls, check=False, timeout=timeout + 10)
        info, errors = [], []
        for line in done.stderr.decode(errors="replace").splitlines():
            if line.startswith(CURL_MARK):
                transfer = json.loads(line[len(CURL_MARK):])
                transfer["http_code"] = int(transfer["http_code"])
                info.append(transfer)
            else:
                errors.append(line)
        return Fetched(done.returncode, done.stdout, "\n".join(errors), info)

    def iperf3(self, seconds=3, reverse=False, port=IPERF_PORT, args=()):
        """One iperf3 TCP test, client -> server (server -> client with reverse), for `seconds`;
        returns iperf3's --json report (raises WireError if it failed)."""
        server = self.server.popen("iperf3", "-s", "-1", "-B", self.server.addr, "-p", port)
        self.server.wait_listening(port, server)
        done = self.client.run("iperf3", "-c", self.server.addr, "-p", port, "-t", seconds, "--json",
                               *(["-R"] if reverse else []), *args, check=False, timeout=seconds + 30)
        _stop_process(server)
        try:
            report = json.loads(done.stdout)
        except json.JSONDecodeError:
            raise WireError(f"iperf3 exit {done.returncode}: {done.stdout[-500:]!r} {done.stderr[-500:]!r}")
        if "error" in report or done.returncode != 0:
            raise WireError(f"iperf3 exit {done.returncode}: {report.get('error')}")
        return report
