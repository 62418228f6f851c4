"""Where a run's text goes: processors' print(), stderr and logging, beside FlowOS's own lines.

For the length of a run sys.stdout and sys.stderr are line writers. A line goes out whole (one
thread's print() never splices into another's, or into FlowOS's lines) and at once (a file gets
lines in the order they were written, 2>&1 into one file too). A stream that is the terminal the
dashboard draws on goes through rich's console, above the live display; a stream sent elsewhere
(>file, 2>file) goes there, the dashboard never taking it. Lines written before the start-up
banner (a processor's setup(), its first calls) wait for it, so the banner comes first.

Processors log with standard logging (Processor.log): records under the "flowos" logger are
written to stderr, as above, in order with everything else written there.
"""
import logging
import os
import sys
import threading

from rich.text import Text

LOGGER = "flowos"   # processors' loggers are flowos.<module>:<Class> (Processor.log)


class LogFormatter(logging.Formatter):
    """flowos: <processor> <LEVEL>: <message>, the processor named as FlowOS names it."""

    def format(self, record):
        name = record.name.removeprefix(LOGGER + ".")
        text = f"flowos: {name} {record.levelname}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


class StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is when the record comes (the run's line writer)."""

    def emit(self, record):
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class LineWriter:
    """A text stream that hands its text on in whole lines, each thread's apart, through `send`."""

    def __init__(self, original, send):
        self.original = original
        self.send = send
        self.partial = {}   # thread id -> the start of its next line
        self.lock = threading.Lock()

    @property
    def rich_proxied_file(self):
        """What rich's consoles write to: they write whole renderings, and the dashboard's console
        must not come back through here."""
        return self.original

    def write(self, text):
        me = threading.get_ident()
        with self.lock:
            head, newline, rest = (self.partial.pop(me, "") + text).rpartition("\n")
            if rest:
                self.partial[me] = rest
        if newline:
            self.send(head + newline)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        """Lines go out as they end; a line not ended yet waits for its end (or the run's)."""

    def finish(self):
        """What the threads wrote without ending the line, as lines."""
        with self.lock:
            left, self.partial = list(self.partial.values()), {}
        for text in left:
            self.send(text + "\n")

    def isatty(self):
        return self.original.isatty()

    def fileno(self):
        return self.original.fileno()

    @property
    def encoding(self):
        return self.original.encoding

    @property
    def errors(self):
        return self.original.errors

    def writable(self):
        return True


def _same_file(a, b):
    try:
        return os.path.samestat(os.fstat(a.fileno()), os.fstat(b.fileno()))
    except (AttributeError, OSError, ValueError):   # no descriptor (a test's capture): not a terminal either
        return False


def log_to_stderr():
    """Processors' log records to stderr (whatever sys.stderr is then): a run's, and a worker
    process's, whose stderr the primary passes on into its own. Returns the handler."""
    handler = StderrHandler()
    handler.setFormatter(LogFormatter())
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.propagate = False   # a root handler the user set up would print them twice
    return handler


def pass_on(pipe, stream):
    """A child's stdout or stderr (a worker process's), line by line, into this process's `stream`
    ("stdout" or "stderr": during a run, its line writers: whole lines, after the banner, above the
    dashboard), until the child closes it."""
    with pipe:
        for line in iter(pipe.readline, b""):
            out = getattr(sys, stream)
            out.write(line.decode(errors="replace"))
            out.flush()


class Router:
    """Installs the line writers and the log handler for a run (a context manager)."""

    def __init__(self, console):
        self.console = console   # the one the dashboard draws on
        self.lock = threading.RLock()
        self.held = []           # (send, text) written before the banner
        self.started = False
        self.saved = None
        self.handler = None

    def _sender(self, stream):
        if self.console.is_terminal and _same_file(stream, self.console.file):
            # rich prints it above the live display (and keeps the display below it)
            return lambda text: self.console.print(Text(text[:-1]), markup=False, highlight=False,
                                                   soft_wrap=True, emoji=False)

        def write(text):
            stream.write(text)
            stream.flush()
        return write

    def _route(self, stream):
        send = self._sender(stream)

        def gated(text):
            with self.lock:
                if self.started:
                    send(text)
                else:
                    self.held.append((send, text))
        return LineWriter(stream, gated)

    def release(self):
        """The banner is out: what waited goes out, in order, and later lines at once."""
        with self.lock:
            self.started = True
            held, self.held = self.held, []
            for send, text in held:
                send(text)

    def __enter__(self):
        global _active
        self.saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self._route(sys.stdout), self._route(sys.stderr)
        self.handler = log_to_stderr()
        _active = self
        return self

    def __exit__(self, *exc):
        global _active
        _active = None
        logging.getLogger(LOGGER).removeHandler(self.handler)
        for writer in (sys.stdout, sys.stderr):
            if isinstance(writer, LineWriter):
                writer.finish()
        self.release()
        sys.stdout, sys.stderr = self.saved
        return False


_active = None


def banner_printed():
    """Called by the view once the start-up banner is out (nothing to do outside a run)."""
    if _active is not None:
        _active.release()
