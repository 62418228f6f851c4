"""The errors FlowOS reports to its users: one line each, no traceback."""


class FlowOSError(Exception):
    """Something FlowOS cannot do, said in one line."""


class ConfigError(FlowOSError):
    """A configuration value is wrong: names where it came from, the key, and what was expected."""

    def __init__(self, source, key, problem):
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {problem}" if key else f"{where}{problem}")
