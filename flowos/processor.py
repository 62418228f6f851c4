"""The base class of Python processors.

A processor is called once per burst with a Batch: every packet of the burst that is ready for it,
grouped by flow. It sets verdicts (batch.verdicts, or helpers such as batch.drop(i)) and may keep
per-flow state in flow.state; on_message() answers an operator (flowos-ctl). See docs/processors.md.

    class PortCounter(flowos.Processor):
        level = "l4"
        readonly = True

        def __init__(self, port=80):          # validate parameters only
            super().__init__()
            self.port = int(port)

        def process(self, batch):
            for flow in batch.flows():
                if flow.dport == self.port:
                    flow.state = (flow.state or 0) + len(flow.packets)
"""
import functools
import inspect
import logging

from flowos.facts import END_REASONS, LEVELS, VERDICTS as VERDICT_NAMES  # noqa: F401 (flow_end reasons: the user API)

VERDICTS = {name: value for value, name in enumerate(VERDICT_NAMES)}
PASS, DROP, HOLD, MODIFIED, REDIRECT = (VERDICTS[name] for name in ("pass", "drop", "hold", "modified", "redirect"))
ON_ERROR = ("pass", "drop", "stop")
MAX_STATE_SIZE = 1 << 16     # the per-flow state a Cython processor (CProcessor) may ask for, in bytes


class Processor:
    """Subclass and override process(); the other hooks are optional."""

    level = "l2"          # packets with no bytes at this level skip the processor
    readonly = True       # False if it changes packet bytes: it then stands alone in its stage
    on_error = "pass"     # what a failing call does to its batch: pass | drop | stop
    # True if its instance must see every flow (state shared across flows): refused with several
    # workers, where each worker has its own instance (docs/processors.md, "With several workers").
    single_instance = False

    def __init__(self, **params):
        if params:
            raise TypeError(f"unexpected parameters: {', '.join(sorted(params))}")

    # Not a property: a subclass may still set an attribute of its own called log.
    @functools.cached_property
    def log(self):
        """A logging.Logger named after the processor (flowos.<module>:<Class>): its lines go to
        stderr, above the dashboard or where stderr was sent (docs/processors.md, "Output")."""
        cls = type(self)
        return logging.getLogger(f"flowos.{cls.__module__}:{cls.__qualname__}")

    def setup(self, context):
        """Once the ports exist: context.ports maps port names to ids (for batch.redirect)."""

    def process(self, batch):
        raise NotImplementedError(f"{type(self).__name__} must implement process(batch)")

    def flow_start(self, flow):
        """A flow started (its first packet arrived; process() sees it next): flow has its 5-tuple
        and may be given a state (flow.state = ...). Only processors that override it cost a
        Python call per new flow."""

    def flow_end(self, flow, reason):
        """A flow ended ("fin", "rst", "idle", "shutdown" or "reload"); flow.state is freed after this."""

    def on_message(self, message):
        """Answers an operator's message (flowos-ctl message NAME TEXT): a str, None (no reply), or
        anything JSON-serialisable (sent as JSON). It runs on the worker between bursts, never
        beside process(), so it may change what process() does next."""
        return None

    def teardown(self):
        """Always called at the end, also after a failed start."""


def checked_policy(processor, on_error=None):
    """A processor's fault policy (on_error, or its class's) and its name, both tiers alike."""
    on_error = on_error or processor.on_error
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, not {on_error!r}")
    if processor.level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {processor.level!r}")
    cls = type(processor)
    return on_error, f"{cls.__module__}:{cls.__qualname__}"


def process_problem(cls):
    """Why a Processor subclass cannot work, or None: it must override process() with a method
    that takes the batch as its one required argument (else every call would be a fault)."""
    found = inspect.getattr_static(cls, "process")
    if found is Processor.__dict__["process"]:
        return "has no process(batch) method"
    if isinstance(found, (staticmethod, classmethod)):
        function, args = found.__func__, (None,) if isinstance(found, staticmethod) else (None, None)
    else:
        function, args = found, (None, None)
    if not callable(function):
        return f"has a process that is {type(found).__name__}, not a method process(self, batch)"
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None   # a callable whose signature Python cannot tell: let it run
    try:
        signature.bind(*args)
    except TypeError:
        return f"has process{signature}, which cannot take one batch: expected process(self, batch)"
    return None


def state_size_problem(cls):
    """What is wrong with a Cython processor class's (a CProcessor subclass's) state_size, or None.
    Pure Python, so that the configuration checks it without the compiled module."""
    size = cls.state_size
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_STATE_SIZE:
        return f"state_size must be an integer in 0..{MAX_STATE_SIZE}, not {size!r}"
    return None
