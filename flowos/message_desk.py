"""An operator's messages to one processor, answered within the call budget: the one message path
of the Python and the Cython tier (flowos/boundary/_python.pyx, flowos/cprocessor.pyx), whose on_message
runs with the GIL on the worker between bursts. The worker waits for the handler for the budget
at most; one that takes longer goes on in its own thread, beside process(), and forwarding
resumes. docs/processors.md (Messages) describes it for the user.
"""
import errno
import json
import threading
import time


class MessageDesk:
    """One processor's on_message, timed like its calls: the watchdog sets the budget and reads
    busy() (flowos/runtime/watchdog.py)."""

    def __init__(self, name, on_message, fault):
        self.name = name                # the processor's, for the handler's thread
        self.on_message = on_message    # the processor's handler: text -> str, None or JSON-serialisable
        self.fault = fault              # fault(exception), called in the except clause (traceback.format_exc() works)
        self.budget = 0.0               # seconds; 0: no limit, answered on the worker
        self.messages = 0
        self.over_budget = 0            # messages whose handler ran past the budget
        self.since = 0.0                # time.monotonic() when the handler under way began; 0: none

    def answer(self, text):
        """(0 or -errno, the reply's text) for the operator. Past the budget: -ETIMEDOUT, the
        handler goes on and its reply is dropped; until it ends, later messages get -EBUSY."""
        if self.budget <= 0:
            return self.respond(text)
        if self.since:
            return -errno.EBUSY, (f"on_message is still answering an earlier message, for "
                                  f"{time.monotonic() - self.since:.1f} s now (past its budget)")
        box = []
        done = threading.Event()
        self.since = time.monotonic()
        try:
            threading.Thread(target=self._respond_into, args=(text, box, done), daemon=True,
                             name=f"flowos on_message {self.name}").start()
        except RuntimeError:     # no thread to be had: answered here, as without a budget
            self._respond_into(text, box, done)
        if done.wait(self.budget):
            return box[0]
        self.over_budget += 1
        return -errno.ETIMEDOUT, (f"on_message ran past its budget of {self.budget * 1000:.0f} ms: it goes on "
                                  "in its own thread, beside process(), and its reply will be dropped")

    def respond(self, text):
        """(0 or -EIO, the reply's text) of on_message(text); an exception is a fault."""
        self.messages += 1
        try:
            result = self.on_message(text)
            return 0, "" if result is None else result if isinstance(result, str) else json.dumps(result)
        except BaseException as e:
            self.fault(e)
            return -errno.EIO, f"on_message failed: {type(e).__name__}: {e}"

    def _respond_into(self, text, box, done):
        try:
            box.append(self.respond(text))
        finally:
            self.since = 0.0
            done.set()

    def busy(self):
        """[("on_message", when it began on time.monotonic()'s clock, None)] while a handler runs."""
        since = self.since
        return [("on_message", since, None)] if since else []
