"""The one exception users see: a message naming the problem and what is allowed."""


class LrsimError(Exception):
    """Bad input or a failed run, stated in one line. The CLI prints it without a traceback."""


class ConfigError(LrsimError):
    """An experiment file or parameter that cannot be accepted (unknown key, value out of range)."""


class Interrupted(LrsimError):
    """Ctrl-C: the work done so far is kept; the message (one line) says how to go on. The CLI
    exits with status 130."""
