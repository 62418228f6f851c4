"""flowos-ctl: talk to running FlowOS instances over their control sockets.

    flowos-ctl list                          the instances running on this machine
    flowos-ctl stats                         ports, pool and engine counters
    flowos-ctl flows [N]                     the N live flows with the most bytes
    flowos-ctl processors                    the processors, with their ids and counters
    flowos-ctl message PROCESSOR TEXT        a message to a processor (by id or name); prints its reply

With one instance running, it is the one; with several, name it with --file-prefix. It talks to
FlowOS's own socket (<runtime dir>/flowos_control.sock, see flowos.runtime.control_server), which idle
clients cannot lock out; DPDK's telemetry socket answers the same commands for DPDK's tools. The
reply is printed as JSON, put back together from the flat form (see flowos.runtime.control).
Exit status: 0, 1 when the instance answered with an error, 2 when there is no instance to ask.
"""
import argparse
import json
import os
import socket
import sys

from flowos.runtime.control import TIMEOUT_MS, unflatten
from flowos.runtime.control_server import MAX_TIMEOUT_MS, SOCKET_NAME, runtime_base

EXIT_ERROR = 1
EXIT_NO_INSTANCE = 2
RELOAD_WAIT_S = 60     # seconds a reload, attach or detach may take at least
MAX_COMMAND = 1023     # bytes: what DPDK 22.11's telemetry takes, kept so both sockets take the same
SOCKET_SLACK = 5.0     # seconds the socket waits beyond what the worker may take


class Instance:
    """One connection to a FlowOS control socket."""

    def __init__(self, path, timeout=SOCKET_SLACK):
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

    def ask(self, command, params="", timeout_ms=None):
        """The reply to a command, {command: value}; timeout_ms: how long the worker may take."""
        request = {"command": command, "params": params}
        if timeout_ms is not None:
            request["timeout_ms"] = timeout_ms
        self.sock.send(json.dumps(request).encode())
        data = self.sock.recv(self.max_output + 1024)
        return json.loads(data.decode("utf-8", "replace"))

    def close(self):
        self.sock.close()


def find_instances(base=None, timeout=SOCKET_SLACK):
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
            inst = Instance(path, timeout=timeout)
        except (OSError, ValueError):
            continue   # the socket of an instance that was killed
        inst.close()
        found.append((prefix, path, inst.info.get("pid")))
    return found


def build_parser():
    p = argparse.ArgumentParser(prog="flowos-ctl", description="Query and steer running FlowOS instances "
                                "(over their control sockets).")
    p.add_argument("-f", "--file-prefix", help="the instance's DPDK file prefix (flowos-run prints it)")
    p.add_argument("--runtime-dir", help=f"where DPDK runtime folders are (default {runtime_base()})")
    p.add_argument("--raw", action="store_true", help="print the reply as it came (flat)")
    p.add_argument("--timeout", type=timeout_seconds, default=TIMEOUT_MS / 1000,
                   help=f"seconds the worker may take to list flows or answer a message "
                        f"(default {TIMEOUT_MS / 1000:g}, at most {MAX_TIMEOUT_MS / 1000:g})")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the FlowOS instances running")
    sub.add_parser("stats", help="ports, pool and flow engine counters")
    flows = sub.add_parser("flows", help="the live flows with the most bytes")
    flows.add_argument("count", nargs="?", type=int, help="how many (default and most: 20)")
    sub.add_parser("processors", help="processors, their ids and counters")
    msg = sub.add_parser("message", help="send a message to a processor and print its reply")
    msg.add_argument("processor", help="its id (see processors), full name, or class name")
    msg.add_argument("text", help="the message")
    migrate = {"action": "store_true",
               "help": "end the live flows' old pipelines now: their next packets start flows in the new "
                       "configuration (docs/reload.md); else they keep theirs until they end"}
    reload = sub.add_parser("reload", help="reload the flows: and engine: sections of the configuration file")
    reload.add_argument("file", nargs="?", help="a configuration file (default: the one the run started with)")
    reload.add_argument("--migrate", **migrate)
    attach = sub.add_parser("attach", help="attach a processor to a flow definition's pipeline, or a whole "
                                           "flow definition (--definition)")
    attach.add_argument("flow", nargs="?", help="the flow definition's name")
    attach.add_argument("processor", nargs="?",
                        help="the processor, as a pipeline entry in YAML: counter, or '{hold: {packets: 4}}'")
    attach.add_argument("--stage", type=int, help="the new stage's index in the pipeline (default: last)")
    attach.add_argument("--definition", help="a whole flow definition in YAML, as a flows: entry")
    attach.add_argument("--position", type=int, help="the definition's priority, 0 first (default: last)")
    attach.add_argument("--migrate", **migrate)
    detach = sub.add_parser("detach", help="detach a processor from a flow definition, or the whole definition")
    detach.add_argument("flow", help="the flow definition's name")
    detach.add_argument("processor", nargs="?", help="the processor's name (default: the whole definition)")
    detach.add_argument("--migrate", **migrate)
    return p


def change_params(args):
    """A reload, attach or detach as the control socket takes it: a JSON object."""
    request = {"migrate": True} if args.migrate else {}
    if args.command == "reload":
        if args.file:
            request["path"] = os.path.abspath(args.file)
        return request
    if args.command == "detach":
        request["flow"] = args.flow
        if args.processor:
            request["processor"] = args.processor
        return request
    if args.definition is not None:
        if args.flow or args.processor:
            raise ValueError("attach --definition takes the whole definition: no flow or processor beside it")
        request["definition"] = yaml_value(args.definition, "--definition")
        if args.position is not None:
            request["position"] = args.position
        return request
    if not args.flow or not args.processor:
        raise ValueError("attach needs a flow definition's name and a processor, or --definition")
    request.update(flow=args.flow, processor=yaml_value(args.processor, "the processor"))
    if args.stage is not None:
        request["stage"] = args.stage
    return request


def yaml_value(text, what):
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{what} is not valid YAML: {e}") from None


def timeout_seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.001 <= value <= MAX_TIMEOUT_MS / 1000:
        raise argparse.ArgumentTypeError(f"expected seconds from 0.001 to {MAX_TIMEOUT_MS / 1000:g}, got {text!r}")
    return value


def command_line(args):
    """(command, params), as telemetry would have them: /flowos/message,PROCESSOR,TEXT."""
    if args.command == "stats":
        return "/flowos/stats", ""
    if args.command == "flows":
        return "/flowos/flows", (str(args.count) if args.count is not None else "")
    if args.command == "processors":
        return "/flowos/processors", ""
    if args.command in ("reload", "attach", "detach"):
        return f"/flowos/{args.command}", json.dumps(change_params(args))
    return "/flowos/message", f"{args.processor},{args.text}"


def main(argv=None):
    args = build_parser().parse_args(argv)
    base = args.runtime_dir or runtime_base()
    if args.command == "list":
        for prefix, path, pid in find_instances(base, args.timeout + SOCKET_SLACK):
            print(f"{prefix}\tpid {pid}\t{path}")
        return 0
    if args.file_prefix:
        path = os.path.join(base, args.file_prefix, SOCKET_NAME)
    else:
        instances = find_instances(base, args.timeout + SOCKET_SLACK)
        if not instances:
            print(f"flowos-ctl: no FlowOS instance is running (no {SOCKET_NAME} under {base})", file=sys.stderr)
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
        cmd, params = command_line(args)
    except ValueError as e:
        print(f"flowos-ctl: {e}", file=sys.stderr)
        return EXIT_ERROR
    size = len(f"{cmd},{params}".encode()) if params else len(cmd.encode())
    if size > MAX_COMMAND:
        print(f"flowos-ctl: the command is {size} bytes; the control socket takes {MAX_COMMAND} at most",
              file=sys.stderr)
        return EXIT_ERROR
    # A reload sets up every new processor before any worker switches: it may take longer than a query.
    wait = max(args.timeout, RELOAD_WAIT_S) if args.command in ("reload", "attach", "detach") else args.timeout
    try:
        inst = Instance(path, timeout=wait + SOCKET_SLACK)
    except (OSError, ValueError) as e:
        print(f"flowos-ctl: cannot reach {path}: {e}", file=sys.stderr)
        return EXIT_NO_INSTANCE
    try:
        reply = inst.ask(cmd, params, round(args.timeout * 1000))
    except (OSError, ValueError) as e:
        print(f"flowos-ctl: no answer from {path}: {e}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        inst.close()
    value = reply.get(cmd)
    if not isinstance(value, dict):
        print(f"flowos-ctl: unexpected reply: {json.dumps(reply)}", file=sys.stderr)
        return EXIT_ERROR
    if not args.raw:
        value = unflatten(value)
        for answer in [value] + value.get("replies", []):   # one instance's, or each worker's
            for key in ("reply", "error"):      # sent in chunks (control.chunks)
                if isinstance(answer.get(key), list):
                    answer[key] = "".join(answer[key])
    print(json.dumps(value, indent=2, ensure_ascii=False))
    return EXIT_ERROR if "error" in value else 0


if __name__ == "__main__":
    sys.exit(main())
