"""The coordinator's refusal of a request (a module of its own: every concern raises it)."""


class CommandError(ValueError):
    """A ctl command that cannot be applied; the session is left unchanged."""
