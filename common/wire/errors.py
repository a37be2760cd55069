"""Errors of the wire protocol (a module of their own so payloads and envelope can both raise them)."""


class ProtocolError(ValueError):
    """A message that does not follow the spec; the text says what is wrong."""


class SequenceRestart(ProtocolError):
    """A publisher's seq went backwards: it restarted, and everything after is a new stream."""
