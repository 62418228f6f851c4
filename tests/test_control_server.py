"""FlowOS's control socket (flowos/runtime/control_server.py) on its own, with real unix sockets: idle
clients are let go (after the idle timeout, or the longest silent first when the bound is
reached), so they can never keep a new client out. The handler is a plain function here; the
end-to-end test with flowos-run and flowos-ctl is in test_control.py."""
import json
import socket

import pytest

from flowos.runtime.control_server import MAX_TIMEOUT_MS, ControlServer

WAIT = 30.0      # seconds a test waits for what must come: generous, for a loaded machine


def answer(command, params, timeout_ms):
    return {"command": command, "params": params, "timeout_ms": timeout_ms}


@pytest.fixture
def server_at(tmp_path):
    servers = []

    def start(**kw):
        server = ControlServer(str(tmp_path / "ctl.sock"), answer, **kw)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


def connect(server):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(WAIT)
    sock.connect(server.path)
    info = json.loads(sock.recv(4096))
    assert info["version"].startswith("FlowOS ") and info["pid"] > 0
    return sock


def ask(sock, request):
    sock.send(json.dumps(request).encode())
    return json.loads(sock.recv(1 << 20))


def test_a_request_is_answered_and_the_connection_stays(server_at):
    server = server_at()
    sock = connect(server)
    assert ask(sock, {"command": "/flowos/flows", "params": "5", "timeout_ms": 7000}) == \
        {"/flowos/flows": {"command": "/flowos/flows", "params": "5", "timeout_ms": 7000}}
    assert ask(sock, {"command": "/flowos/stats"}) == \
        {"/flowos/stats": {"command": "/flowos/stats", "params": "", "timeout_ms": None}}
    sock.close()


@pytest.mark.parametrize("request_bytes", [b"/flowos/stats", b"{}", b'{"command": 3}', b"\xff",
                                           json.dumps({"command": "/x", "timeout_ms": MAX_TIMEOUT_MS + 1}).encode()])
def test_a_bad_request_gets_an_error_not_a_disconnection(server_at, request_bytes):
    server = server_at()
    sock = connect(server)
    sock.send(request_bytes)
    assert json.loads(sock.recv(4096))["error"].startswith("bad request")
    assert "/x" in ask(sock, {"command": "/x"})
    sock.close()


def test_a_silent_client_is_let_go_after_the_idle_timeout(server_at):
    server = server_at(idle_timeout=0.5)
    silent = connect(server)
    assert silent.recv(4096) == b""          # closed by the server (recv waits up to WAIT s)
    assert server.dropped_idle == 1
    silent.close()


def test_past_the_bound_the_client_silent_the_longest_goes(server_at):
    server = server_at(idle_timeout=600, max_clients=3)
    a, b, c = connect(server), connect(server), connect(server)
    assert "/x" in ask(a, {"command": "/x"})         # a spoke last: b is now the longest silent
    d = connect(server)
    assert b.recv(4096) == b""
    assert "/y" in ask(a, {"command": "/y"}) and "/y" in ask(c, {"command": "/y"}) and "/y" in ask(d, {"command": "/y"})
    for sock in (a, b, c, d):
        sock.close()


def test_hundreds_of_idle_clients_never_keep_a_new_one_out(server_at):
    server = server_at()
    idle = [connect(server) for _ in range(300)]
    late = connect(server)
    assert "/flowos/stats" in ask(late, {"command": "/flowos/stats"})
    assert idle[0].recv(4096) == b"" and server.dropped_idle == 300 + 1 - server.max_clients
    for sock in idle + [late]:
        sock.close()


def test_close_disconnects_everyone_and_removes_the_socket(server_at, tmp_path):
    server = server_at()
    sock = connect(server)
    server.close()
    assert sock.recv(4096) == b""
    assert not (tmp_path / "ctl.sock").exists()
    server.close()       # idempotent
    sock.close()


def test_a_stale_socket_is_replaced_but_a_live_one_is_not(server_at, tmp_path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(str(tmp_path / "ctl.sock"))        # a socket file nobody listens on: a killed run's
    stale.close()
    server = server_at()
    connect(server).close()
    with pytest.raises(OSError, match="another process serves it"):
        ControlServer(server.path, answer)
    connect(server).close()                        # the first one still serves
