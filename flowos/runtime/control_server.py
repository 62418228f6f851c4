"""FlowOS's own control socket (<runtime dir>/flowos_control.sock), the one flowos-ctl uses.

DPDK 22.11's telemetry socket accepts a fixed number of clients and never drops an idle one, so a
few clients that connect and say nothing lock every operator out until they leave. This socket
is served by one thread of FlowOS with two bounds instead:

- a client silent for IDLE_TIMEOUT_S seconds is disconnected;
- at most MAX_CLIENTS are connected: a new one disconnects the client silent the longest.

So a new client always gets in, and idle ones cannot keep it out. The protocol is telemetry's
shape over an AF_UNIX SOCK_SEQPACKET socket: on connect the server sends one JSON object
({"version", "pid", "max_output_len"}); then each request is one JSON object
{"command": "/flowos/stats", "params": "", "timeout_ms": 2000} (params and timeout_ms optional)
and its answer one JSON object {command: answer}, the answer in the flat form of flowos.runtime.control.
Requests are served one at a time, in the order they come.
"""
import errno
import json
import os
import selectors
import socket
import threading
import time

import flowos

SOCKET_NAME = "flowos_control.sock"
IDLE_TIMEOUT_S = 10.0
MAX_CLIENTS = 16
MAX_REQUEST = 4096           # bytes of one request (a command is at most 1023: see flowos.apps.ctl)
MAX_OUTPUT = 1 << 20         # bytes of one answer, at most (flowos.runtime.control keeps them near 16 KB)
MAX_TIMEOUT_MS = 60000       # the longest a client may ask the worker to take



def runtime_base():
    """Where DPDK puts its runtime folders (as eal_get_runtime_dir does): each run's socket is in
    its file prefix's folder there."""
    if os.geteuid() == 0:
        return "/var/run/dpdk"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", "dpdk")


def served(path):
    """Whether a live process serves the control socket at path (a killed one's answers nothing)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _remove_stale(path):
    """Removes the socket a killed process of the same file prefix left; refuses a live one's."""
    if served(path):
        raise OSError(errno.EADDRINUSE, "another process serves it (the same --file-prefix?)")
    os.unlink(path)


class ControlServer:
    """Serves handler(command, params, timeout_ms) -> dict on a unix socket, on a thread of its own."""

    def __init__(self, path, handler, idle_timeout=IDLE_TIMEOUT_S, max_clients=MAX_CLIENTS):
        self.path = path
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.max_clients = max_clients
        self.clients = {}            # socket -> when it last spoke (time.monotonic())
        self.dropped_idle = 0        # clients disconnected for their silence, or to make room
        self.info = json.dumps({"version": f"FlowOS {flowos.__version__}", "pid": os.getpid(),
                                "max_output_len": MAX_OUTPUT}).encode()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            if os.path.exists(path):
                _remove_stale(path)
            self.listener.bind(path)
            os.chmod(path, 0o600)
            self.listener.listen(socket.SOMAXCONN)
        except OSError:
            self.listener.close()
            raise
        self.listener.setblocking(False)
        self.wake_read, self.wake_write = socket.socketpair()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_read, selectors.EVENT_READ)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, name="flowos-control", daemon=True)
        self.thread.start()

    def close(self):
        """Stops serving (a request under way is answered first), disconnects everyone, removes
        the socket. Idempotent."""
        if self.stopping:
            return
        self.stopping = True
        self.wake_write.send(b"x")
        self.thread.join()
        for sock in list(self.clients):
            self._drop(sock)
        self.selector.close()
        for sock in (self.listener, self.wake_read, self.wake_write):
            sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _serve(self):
        while not self.stopping:
            for key, _ in self.selector.select(self._next_expiry()):
                if self.stopping:
                    break
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj is not self.wake_read:
                    self._serve_client(key.fileobj)
            self._drop_idle()

    def _next_expiry(self):
        if not self.clients:
            return None
        return max(0.0, min(self.clients.values()) + self.idle_timeout - time.monotonic())

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:          # out of descriptors, say: the next select() tries again
                return
            if len(self.clients) >= self.max_clients:
                self.dropped_idle += 1
                self._drop(min(self.clients, key=self.clients.get))
            sock.setblocking(False)
            if not self._send(sock, self.info):
                sock.close()
                continue
            self.clients[sock] = time.monotonic()
            self.selector.register(sock, selectors.EVENT_READ)

    def _serve_client(self, sock):
        try:
            data = sock.recv(MAX_REQUEST)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:                 # the client left
            self._drop(sock)
            return
        self.clients[sock] = time.monotonic()
        answer = self._answer(data)
        if not self._send(sock, answer):
            self._drop(sock)
            return
        self.clients[sock] = time.monotonic()

    def _answer(self, data):
        try:
            request = json.loads(data.decode())
            command = request["command"]
            params = request.get("params", "")
            timeout_ms = request.get("timeout_ms")
            if not isinstance(command, str) or not isinstance(params, str):
                raise ValueError("command and params are strings")
            if timeout_ms is not None and not (isinstance(timeout_ms, int) and 1 <= timeout_ms <= MAX_TIMEOUT_MS):
                raise ValueError(f"timeout_ms is a whole number from 1 to {MAX_TIMEOUT_MS}")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return json.dumps({"error": f"bad request ({e}): expected JSON like "
                               '{"command": "/flowos/stats", "params": "", "timeout_ms": 2000}'}).encode()
        try:
            reply = self.handler(command, params, timeout_ms)
        except Exception as e:       # the handler answers its own errors; this is a last resort
            reply = {"error": f"{type(e).__name__}: {e}"}
        return json.dumps({command: reply}).encode()

    def _send(self, sock, data):
        """False when the client cannot take it now (it reads nothing): it is dropped."""
        try:
            sock.send(data)
            return True
        except OSError:
            return False

    def _drop_idle(self):
        now = time.monotonic()
        for sock, last in list(self.clients.items()):
            if now - last >= self.idle_timeout:
                self.dropped_idle += 1
                self._drop(sock)

    def _drop(self, sock):
        if self.clients.pop(sock, None) is not None:
            self.selector.unregister(sock)
        sock.close()
