"""flowos-ctl: talk to running FlowOS instances over their DPDK telemetry sockets.

    flowos-ctl list                          the instances running on this machine
    flowos-ctl stats                         ports, pool and engine counters
    flowos-ctl flows [N]                     the N live flows with the most bytes
    flowos-ctl processors                    the processors, with their ids and counters
    flowos-ctl message PROCESSOR TEXT        a message to a processor (by id or name); prints its reply

With one instance running, it is the one; with several, name it with --file-prefix. The reply
is printed as JSON, put back together from telemetry's flat form (see flowos.control).
Exit status: 0, 1 when the instance answered with an error, 2 when there is no instance to ask.
"""
import argparse
import json
import os
import socket
import sys

from flowos.control import SOCKET_NAME, unflatten

EXIT_ERROR = 1
EXIT_NO_INSTANCE = 2
MAX_COMMAND = 1023     # bytes: DPDK 22.11 reads a command into a 1024-byte buffer


def runtime_base():
    """Where DPDK puts its runtime folders (as eal_get_runtime_dir does)."""
    if os.geteuid() == 0:
        return "/var/run/dpdk"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", "dpdk")


class Instance:
    """One connection to a telemetry socket."""

    def __init__(self, path, timeout=5.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
            self.info = json.loads(self.sock.recv(1024).decode())
        except BaseException:
            self.sock.close()
            raise
        self.max_output = int(self.info.get("max_output_len", 16384))

    def ask(self, command):
        """The reply to a command: telemetry's JSON, {command: value}, as Python."""
        self.sock.send(command.encode())
        data = self.sock.recv(self.max_output + 1024)
        return json.loads(data.decode("utf-8", "replace"))

    def close(self):
        self.sock.close()


def find_instances(base=None):
    """(file prefix, socket path, pid) of each FlowOS instance answering on this machine."""
    base = base or runtime_base()
    found = []
    try:
        prefixes = sorted(os.listdir(base))
    except OSError:
        return found
    for prefix in prefixes:
        path = os.path.join(base, prefix, SOCKET_NAME)
        if not os.path.exists(path):
            continue
        try:
            inst = Instance(path, timeout=2.0)
        except (OSError, ValueError):
            continue   # a stale socket, or not telemetry
        try:
            commands = inst.ask("/").get("/", [])
        except (OSError, ValueError):
            commands = []
        finally:
            inst.close()
        if "/flowos/stats" in commands:
            found.append((prefix, path, inst.info.get("pid")))
    return found


def build_parser():
    p = argparse.ArgumentParser(prog="flowos-ctl", description="Query and steer running FlowOS instances "
                                "(over DPDK telemetry).")
    p.add_argument("-f", "--file-prefix", help="the instance's DPDK file prefix (flowos-run prints it)")
    p.add_argument("--runtime-dir", help=f"where DPDK runtime folders are (default {runtime_base()})")
    p.add_argument("--raw", action="store_true", help="print telemetry's reply as it came (flat)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the FlowOS instances running")
    sub.add_parser("stats", help="ports, pool and flow engine counters")
    flows = sub.add_parser("flows", help="the live flows with the most bytes")
    flows.add_argument("count", nargs="?", type=int, help="how many (default and most: 20)")
    sub.add_parser("processors", help="processors, their ids and counters")
    msg = sub.add_parser("message", help="send a message to a processor and print its reply")
    msg.add_argument("processor", help="its id (see processors), full name, or class name")
    msg.add_argument("text", help="the message")
    return p


def command_line(args):
    if args.command == "stats":
        return "/flowos/stats"
    if args.command == "flows":
        return "/flowos/flows" + (f",{args.count}" if args.count is not None else "")
    if args.command == "processors":
        return "/flowos/processors"
    return f"/flowos/message,{args.processor},{args.text}"


def main(argv=None):
    args = build_parser().parse_args(argv)
    base = args.runtime_dir or runtime_base()
    if args.command == "list":
        for prefix, path, pid in find_instances(base):
            print(f"{prefix}\tpid {pid}\t{path}")
        return 0
    if args.file_prefix:
        path = os.path.join(base, args.file_prefix, SOCKET_NAME)
    else:
        instances = find_instances(base)
        if not instances:
            print(f"flowos-ctl: no FlowOS instance is running (no telemetry socket under {base})", file=sys.stderr)
            return EXIT_NO_INSTANCE
        if len(instances) > 1:
            print("flowos-ctl: several FlowOS instances are running; name one with --file-prefix:", file=sys.stderr)
            for prefix, _, pid in instances:
                print(f"  {prefix}\tpid {pid}", file=sys.stderr)
            return EXIT_NO_INSTANCE
        path = instances[0][1]
    if args.command == "message" and "\n" in args.text:
        print("flowos-ctl: a message is one line", file=sys.stderr)
        return EXIT_ERROR
    try:
        inst = Instance(path)
    except (OSError, ValueError) as e:
        print(f"flowos-ctl: cannot reach {path}: {e}", file=sys.stderr)
        return EXIT_NO_INSTANCE
    cmd = command_line(args)
    if len(cmd.encode()) > MAX_COMMAND:     # telemetry would cut it silently
        inst.close()
        print(f"flowos-ctl: the command is {len(cmd.encode())} bytes; telemetry takes {MAX_COMMAND} at most",
              file=sys.stderr)
        return EXIT_ERROR
    try:
        reply = inst.ask(cmd)
    except (OSError, ValueError) as e:
        print(f"flowos-ctl: no answer from {path}: {e}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        inst.close()
    value = reply.get(cmd.split(",", 1)[0])
    if not isinstance(value, dict):
        print(f"flowos-ctl: unexpected reply: {json.dumps(reply)}", file=sys.stderr)
        return EXIT_ERROR
    if not args.raw:
        value = unflatten(value)
        if isinstance(value.get("reply"), list):
            value["reply"] = "".join(value["reply"])
    print(json.dumps(value, indent=2, ensure_ascii=False))
    return EXIT_ERROR if "error" in value else 0


if __name__ == "__main__":
    sys.exit(main())
