"""Wire protocol: every message type, its fields and its encoding, in one place.

The spec lives in docs/protocol.md; this module follows it. A message on the wire is a ZeroMQ multipart:

    frame 0   topic     ASCII message type (lets SUB sockets filter)
    frame 1   header    msgpack map: v, type, pub, seq, step, clock, body, arrays
    frame 2+  buffers   raw little-endian numpy buffers, one per entry of header["arrays"]

`seq` is per publisher and counts every sequenced message it published (1, 2, 3, ...); a HEARTBEAT
repeats the last seq without consuming one, so a receiver also detects loss at the tail.
Decoding is strict: a malformed message raises ProtocolError with what is wrong, never anything else.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import msgpack
import numpy as np

from common.wire import payloads as PL
from common.wire.errors import ProtocolError, SequenceRestart  # noqa: F401  (part of this module's API)

PROTOCOL_VERSION = 1
MAX_FRAMES = 256
MAX_HEADER_BYTES = 4 * 1024 * 1024
MAX_ARRAY_BYTES = 512 * 1024 * 1024
# Largest message a socket accepts (ZMQ_MAXMSGSIZE: a bigger one drops the peer's connection instead of
# being read whole). Requests and acks to the coordinator are small; published data can be large.
MAX_REQUEST_BYTES = 1024 * 1024
MAX_DATA_BYTES = MAX_ARRAY_BYTES
PACK_UP_TO_BYTES = 256 * 1024  # a message's arrays up to this size in all travel packed in one frame

# --- message types -----------------------------------------------------------------------------
# Published by the coordinator (PUB):
SESSION_START = "SESSION_START"      # date, open_ns, close_ns, symbols, streamed/generated intervals
HISTORY = "HISTORY"                  # trailing 1m bars of the session's symbols (bar batch)
STEP = "STEP"                        # clock + every 1m bar that closed at it, all symbols (bar batch)
STEPS = "STEPS"                      # consecutive STEPs in one message (clock max, nothing due in between)
PAUSE = "PAUSE"                      # streaming paused at clock; reason
PREPARE = "PREPARE"                  # a symbol's add is coming: its trailing history, to warm up ahead
CATCHUP_SNAPSHOT = "CATCHUP_SNAPSHOT"  # one added symbol: its history + its session bars [open, T)
RESUME = "RESUME"                    # streaming resumes at clock
SYMBOL_REMOVED = "SYMBOL_REMOVED"    # a symbol left the session
SESSION_END = "SESSION_END"          # the session's last step was published
ORDERS = "ORDERS"                    # a trading stage's order actions (from its step ACK), relayed to the broker
BACKTEST_END = "BACKTEST_END"        # no more sessions: flush results and confirm
SHUTDOWN = "SHUTDOWN"                # every participant flushed: exit now
HEARTBEAT = "HEARTBEAT"              # liveness + last seq (not sequenced itself)
# Published by the processor / quality (PUB):
DERIVED = "DERIVED"                  # derived bars + indicator values of one step, all symbols
DERIVED_SNAPSHOT = "DERIVED_SNAPSHOT"  # the same for a whole catch-up or history batch
QUALITY = "QUALITY"                  # quality % and gap counts that changed at this step
QUALITY_SNAPSHOT = "QUALITY_SNAPSHOT"  # full quality table (session end, catch-up)
DERIVED_STEPS = "DERIVED_STEPS"      # the DERIVED answers of a STEPS message, one part per step
QUALITY_STEPS = "QUALITY_STEPS"      # the QUALITY answers of a STEPS message, one part per step
# Sent to the coordinator (DEALER/REQ -> ROUTER):
HELLO = "HELLO"                      # stage registration (stage name, role)
COMMAND = "COMMAND"                  # ctl command: name, args, request id
REPLY = "REPLY"                      # coordinator's answer to HELLO/COMMAND
# Sent to the coordinator on the registering DEALER (-> ROUTER, tied to that connection):
ACK = "ACK"                          # stage finished step/snapshot/end `ref`

# Which coordinator messages the answering stages answer, and with which type (docs/protocol.md).
ANSWERS = {
    "processor": {STEP: DERIVED, STEPS: DERIVED_STEPS, HISTORY: DERIVED_SNAPSHOT,
                  CATCHUP_SNAPSHOT: DERIVED_SNAPSHOT},
    "quality": {STEP: QUALITY, STEPS: QUALITY_STEPS, HISTORY: QUALITY_SNAPSHOT, CATCHUP_SNAPSHOT: QUALITY_SNAPSHOT,
                SESSION_END: QUALITY_SNAPSHOT},
}
# A step batch and the one-step type of its parts.
BATCH_PART = {STEPS: STEP, DERIVED_STEPS: DERIVED, QUALITY_STEPS: QUALITY}
BATCH_OF = {part: batch for batch, part in BATCH_PART.items()}

SEQUENCED = frozenset({
    SESSION_START, HISTORY, STEP, STEPS, PAUSE, PREPARE, CATCHUP_SNAPSHOT, RESUME, SYMBOL_REMOVED, SESSION_END,
    ORDERS, BACKTEST_END, SHUTDOWN, DERIVED, DERIVED_SNAPSHOT, QUALITY, QUALITY_SNAPSHOT, DERIVED_STEPS,
    QUALITY_STEPS,
})
ALL_TYPES = SEQUENCED | {HEARTBEAT, HELLO, COMMAND, REPLY, ACK}

# Required body fields per type (name -> accepted python types). Extra fields are allowed (forward
# compatible); missing or mistyped required fields are a ProtocolError.
_INT = (int,)
_STR = (str,)
_LIST = (list,)
_DICT = (dict,)
BODY_FIELDS: dict[str, dict[str, tuple]] = {
    SESSION_START: {"date": _STR, "open_ns": _INT, "close_ns": _INT, "symbols": _LIST,
                    "day_index": _INT, "n_days": _INT, "streamed": _DICT, "generated": _DICT},
    HISTORY: {"symbols": _LIST, "interval": _STR, "days": _LIST},
    STEP: {"symbols": _LIST},
    **{batch: {"part": _STR, "steps": _LIST, "clocks": _LIST, "bodies": _LIST, "names": _LIST, "lengths": _LIST}
       for batch in BATCH_PART},
    PAUSE: {"reason": _STR},
    PREPARE: {"symbol": _STR, "days": _LIST, "sessions": _LIST},
    CATCHUP_SNAPSHOT: {"symbol": _STR, "slot": _INT, "days": _LIST, "caught_up": _INT,
                       "dropped": _INT, "snapshot_id": _INT},
    RESUME: {"reason": _STR},
    SYMBOL_REMOVED: {"symbol": _STR},
    SESSION_END: {"date": _STR, "steps": _INT},
    ORDERS: {"stage": _STR, "actions": _LIST},
    BACKTEST_END: {"sessions": _INT},
    SHUTDOWN: {},
    HEARTBEAT: {},
    DERIVED: {"intervals": _LIST, "indicators": _LIST},
    DERIVED_SNAPSHOT: {"intervals": _LIST, "indicators": _LIST, "scope": _STR},
    QUALITY: {},
    QUALITY_SNAPSHOT: {"scope": _STR},
    HELLO: {"stage": _STR, "role": _STR},
    COMMAND: {"name": _STR, "args": _DICT, "request_id": _STR},
    REPLY: {"ok": (bool,)},
    ACK: {"stage": _STR, "kind": _STR, "ref": _INT},
}
# Types whose arrays decode to a typed payload (attached to the decoded Message as .payload).
PAYLOADS = {
    STEP: PL.StepPayload, HISTORY: PL.HistoryPayload, PREPARE: PL.PreparePayload,
    CATCHUP_SNAPSHOT: PL.CatchupPayload, DERIVED: PL.DerivedPayload, DERIVED_SNAPSHOT: PL.DerivedPayload,
    QUALITY: PL.QualityPayload, QUALITY_SNAPSHOT: PL.QualityTablePayload,
    **{batch: PL.StepBatchPayload for batch in BATCH_PART},
}
_DTYPES = {"i8": np.int64, "i4": np.int32, "f8": np.float64, "u1": np.uint8, "i2": np.int16}


@dataclass
class Message:
    """One message: envelope fields, body map, named arrays and, for types with arrays, the typed
    payload (common/wire/payloads.py) those arrays decode to."""
    type: str
    body: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    pub: str = ""
    seq: int = 0
    step: int = 0
    clock: int = 0
    payload: object = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, mtype: str, payload, step: int = 0, clock: int = 0) -> "Message":
        """A message carrying a typed payload: body and arrays come from payload.encode()."""
        if not isinstance(payload, PAYLOADS[mtype]):
            raise ProtocolError(f"{mtype} carries a {PAYLOADS[mtype].__name__}, not {type(payload).__name__}")
        body, arrays = payload.encode()
        return cls(mtype, body, arrays, step=step, clock=clock, payload=payload)


def step_batch(parts: list[Message]) -> Message:
    """One-step messages of consecutive steps (all STEP, DERIVED or QUALITY) -> their batch message, stamped
    with the last step and clock."""
    part = parts[0].type
    payload = PL.StepBatchPayload(part, [m.step for m in parts], [m.clock for m in parts], [m.payload for m in parts])
    return Message.of(BATCH_OF[part], payload, step=parts[-1].step, clock=parts[-1].clock)


def split_batch(msg: Message) -> list[Message]:
    """A step batch -> its one-step messages (same publisher and seq: they travelled as one message)."""
    batch = msg.payload
    return [Message(batch.part, {}, {}, msg.pub, msg.seq, step, clock, payload)
            for step, clock, payload in zip(batch.steps, batch.clocks, batch.parts)]


def encode(msg: Message) -> list:
    """Message -> multipart frames. Large arrays go one per frame, without copying; the arrays of a small
    message (many small arrays, the common case) go packed into one frame: ZeroMQ's cost per frame
    (~10 µs to send and receive) is more than the copy."""
    specs, buffers, total = [], [], 0
    for name, arr in msg.arrays.items():
        arr = np.ascontiguousarray(arr)
        code = arr.dtype.str.lstrip("<=|")
        if code not in _DTYPES:
            raise ProtocolError(f"{msg.type}: array {name!r} has unsupported dtype {arr.dtype}")
        specs.append([name, code, int(arr.shape[0])])
        buffers.append(arr.data.cast("B") if arr.size else b"")
        total += arr.nbytes
    if len(buffers) > 1 and total <= PACK_UP_TO_BYTES:
        buffers = [_pack(buffers)]
    header = {"v": PROTOCOL_VERSION, "type": msg.type, "pub": msg.pub, "seq": msg.seq,
              "step": msg.step, "clock": msg.clock, "body": msg.body, "arrays": specs}
    return [msg.type.encode(), msgpack.packb(header, use_bin_type=True)] + buffers


def _pack(buffers: list) -> bytes:
    """Buffers back to back, each padded to a multiple of 8 bytes (so each array starts 8-aligned)."""
    parts = []
    for buf in buffers:
        parts.append(buf)
        pad = -memoryview(buf).nbytes % 8
        if pad:
            parts.append(bytes(pad))
    return b"".join(parts)


def decode(frames: list) -> Message:
    """Multipart frames -> Message; strict: raises ProtocolError on anything malformed."""
    if not 2 <= len(frames) <= MAX_FRAMES:
        raise ProtocolError(f"expected 2..{MAX_FRAMES} frames, got {len(frames)}")
    topic, raw_header = bytes(frames[0]), frames[1]
    if len(raw_header) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw_header)} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(bytes(raw_header), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"header is not valid msgpack ({exc})") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a map")
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r}, expected {PROTOCOL_VERSION}")
    mtype = header.get("type")
    if mtype not in ALL_TYPES:
        raise ProtocolError(f"unknown message type {mtype!r}")
    if topic != mtype.encode():
        raise ProtocolError(f"topic {topic!r} does not match type {mtype}")
    body = _check_header(mtype, header)
    arrays = _decode_arrays(mtype, header.get("arrays"), frames[2:])
    payload = None
    if mtype in PAYLOADS:
        try:
            payload = PAYLOADS[mtype].decode(body, arrays)
        except ProtocolError as exc:
            raise ProtocolError(f"{mtype}: {exc}") from None
        if mtype in BATCH_PART and payload.part != BATCH_PART[mtype]:
            raise ProtocolError(f"{mtype}: parts are {payload.part}, expected {BATCH_PART[mtype]}")
    return Message(mtype, body, arrays, header["pub"], header["seq"], header["step"], header["clock"], payload)


def _check_header(mtype: str, header: dict) -> dict:
    """The envelope's fields and the body's required fields; returns the body."""
    for key in ("seq", "step", "clock"):
        if not isinstance(header.get(key), int):
            raise ProtocolError(f"{mtype}: header field {key!r} must be an integer")
    if not isinstance(header.get("pub"), str):
        raise ProtocolError(f"{mtype}: header field 'pub' must be a string")
    body = header.get("body")
    if not isinstance(body, dict):
        raise ProtocolError(f"{mtype}: body must be a map")
    for name, types in BODY_FIELDS[mtype].items():
        if name not in body:
            raise ProtocolError(f"{mtype}: body field {name!r} is missing")
        if not isinstance(body[name], types) or (types == _INT and isinstance(body[name], bool)):
            raise ProtocolError(f"{mtype}: body field {name!r} has type {type(body[name]).__name__}")
    return body


def _decode_arrays(mtype: str, specs, buffers) -> dict[str, np.ndarray]:
    """One buffer frame per array spec, or (two or more arrays) one frame holding them packed."""
    if not isinstance(specs, list):
        raise ProtocolError(f"{mtype}: array specs are not a list")
    if len(specs) > 1 and len(buffers) == 1:
        return _unpack_arrays(mtype, specs, buffers[0])
    if len(specs) != len(buffers):
        raise ProtocolError(f"{mtype}: array specs do not match the {len(buffers)} buffer frame(s)")
    arrays = {}
    for spec, buf in zip(specs, buffers):
        name, dtype, nbytes = _array_spec(mtype, spec)
        got = memoryview(buf).nbytes
        if got != nbytes:
            raise ProtocolError(f"{mtype}: array {name!r} should be {nbytes} bytes, got {got}")
        arrays[name] = np.frombuffer(buf, dtype=dtype) if nbytes else np.empty(0, dtype)
    return arrays


def _unpack_arrays(mtype: str, specs: list, buf) -> dict[str, np.ndarray]:
    """Arrays packed by `_pack`: views into the one frame, each at the next multiple of 8 bytes."""
    view = memoryview(buf).cast("B")
    arrays, offset = {}, 0
    for spec in specs:
        name, dtype, nbytes = _array_spec(mtype, spec)
        if offset + nbytes > view.nbytes:
            raise ProtocolError(f"{mtype}: packed arrays overrun their frame of {view.nbytes} bytes at {name!r}")
        arrays[name] = np.frombuffer(view, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset)
        offset += nbytes + (-nbytes % 8)
    if offset != view.nbytes:
        raise ProtocolError(f"{mtype}: packed arrays should be {offset} bytes, got {view.nbytes}")
    return arrays


def _array_spec(mtype: str, spec) -> tuple[str, np.dtype, int]:
    """[name, dtype code, length] -> (name, dtype, byte size); a ProtocolError when malformed."""
    if (not isinstance(spec, list) or len(spec) != 3 or not isinstance(spec[0], str)
            or spec[1] not in _DTYPES or not isinstance(spec[2], int) or spec[2] < 0):
        raise ProtocolError(f"{mtype}: bad array spec {spec!r}")
    dtype = np.dtype(_DTYPES[spec[1]])
    nbytes = spec[2] * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise ProtocolError(f"{mtype}: array {spec[0]!r} of {nbytes} bytes exceeds {MAX_ARRAY_BYTES}")
    return spec[0], dtype, nbytes


# --- acknowledgements and registrations --------------------------------------------------------
ACK_KINDS = ("step", "snapshot", "flushed", "alive")  # alive: a heartbeat of a registered stage
STAGE_ROLES = ("participant", "observer")


def ack(stage: str, kind: str, ref: int, busy_ns: int = 0, clock: int = 0) -> Message:
    if kind not in ACK_KINDS:
        raise ProtocolError(f"unknown ack kind {kind!r}")
    return Message(ACK, {"stage": stage, "kind": kind, "ref": ref, "busy_ns": busy_ns}, clock=clock)


# --- sequence checking ---------------------------------------------------------------------------
class SequenceChecker:
    """Checks per-publisher sequence numbers; reports every gap instead of hiding it."""

    def __init__(self, join_anywhere: bool = False):
        """`join_anywhere`: the first message of a publisher sets the baseline (a late joiner, whose
        snapshot covers what came before); otherwise sequenced messages must start at 1."""
        self.last: dict[str, int] = {}
        self.join_anywhere = join_anywhere

    def check(self, msg: Message) -> int:
        """Returns how many messages were lost before `msg` (0 when contiguous)."""
        last = self.last.get(msg.pub)
        if msg.type == HEARTBEAT:
            if last is None:  # joining: the first heartbeat gives the baseline
                self.last[msg.pub] = msg.seq
                return 0
            if msg.seq <= last:
                return 0
            gap = msg.seq - last
            self.last[msg.pub] = msg.seq
        elif last is None and self.join_anywhere:
            self.last[msg.pub] = msg.seq
            return 0
        else:
            expected = 1 if last is None else last + 1
            gap = msg.seq - expected
            self.last[msg.pub] = msg.seq
            if gap < 0:  # the publisher restarted: what we had from it is no longer continued
                raise SequenceRestart(f"{msg.pub}: seq {msg.seq} after {last}: the publisher restarted")
        return gap


class Publisher:
    """Stamps outgoing messages with this publisher's id and next sequence number."""

    def __init__(self, socket, name: str):
        self.socket = socket
        self.name = name
        self.seq = 0

    def send(self, msg: Message) -> list:
        """Stamp and send; returns the frames (the coordinator journals them for late joiners)."""
        msg.pub = self.name
        if msg.type in SEQUENCED:
            self.seq += 1
        msg.seq = self.seq
        frames = encode(msg)
        self.socket.send_multipart(frames, copy=False)
        return frames

    def heartbeat(self, clock: int = 0, step: int = 0) -> None:
        self.send(Message(HEARTBEAT, clock=clock, step=step))

