"""The errors FlowOS reports to its users: one line each, no traceback."""


class FlowOSError(Exception):
    """Something FlowOS cannot do, said in one line. errno: the error number of the C call that
    failed (flowos.boundary._runtime.check keeps it), else None."""

    def __init__(self, message, errno=None):
        super().__init__(message)
        self.errno = errno


class ConfigError(FlowOSError):
    """A configuration value is wrong: names where it came from, the key, and what was expected."""

    def __init__(self, source, key, problem):
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {problem}" if key else f"{where}{problem}")
