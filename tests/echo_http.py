"""An HTTP/1.1 server that answers every GET with the request it received (request line and
headers, as they arrived), keeping connections open: tests/test_e2e_streams.py runs it in the
server namespace to see what FlowOS's rewriters delivered."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socket


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (self.requestline + "\r\n" + str(self.headers)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class DualStack(ThreadingHTTPServer):
    address_family = socket.AF_INET6


if __name__ == "__main__":
    DualStack(("::", int(sys.argv[1])), Echo).serve_forever()
