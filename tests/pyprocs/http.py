"""An HTTP/1.1 response-body rewriter over the stream API, for tests/test_e2e_streams.py."""
import re

import flowos

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)\r\n", re.I)


class BodyRewriter(flowos.Processor):
    """Replaces `old` with `new` in each response body (server -> client) and rewrites its
    Content-Length to match. A body is held until it is whole (it must fit in what the server
    sends unacknowledged); a body longer than max_body passes unchanged."""
    level = "payload"
    readonly = False

    def __init__(self, old, new, max_body=65536):
        super().__init__()
        self.old, self.new, self.max_body = old.encode(), new.encode(), int(max_body)
        self.rewritten = 0

    def process(self, batch):
        for flow in batch.flows():
            if flow.proto != 6:
                continue                           # not HTTP: passes
            s = flow.stream(1)
            at = s.start if flow.state is None else max(flow.state, s.start)
            at = self.responses(s, at)
            flow.state = at
            s.release(at)

    def responses(self, s, at):
        """Rewrites every whole response from `at`; returns where the first unfinished one starts."""
        while True:
            head_end = s.find(b"\r\n\r\n", at)
            if head_end < 0:
                return at
            head = s.read(at, head_end + 4 - at)
            length = CONTENT_LENGTH.search(head)
            if length is None:
                return s.end                       # no length: not ours to rewrite, let it all go
            size = int(length.group(1))
            body = head_end + 4
            if size > self.max_body:
                at = body + size                   # let it through as it comes
                continue
            if s.end < body + size:
                return at                          # wait for the rest of the body
            found = s.read(body, size)
            if self.old in found:
                changed = found.replace(self.old, self.new)
                s.delete(body, size)
                s.insert(body, changed)
                digits_at = at + length.start(1)
                s.delete(digits_at, len(length.group(1)))
                s.insert(digits_at, str(len(changed)).encode())
                self.rewritten += 1
                size = len(changed) + len(str(len(changed))) - len(length.group(1))
            at = body + size

    def on_message(self, message):
        return str(self.rewritten)
