"""The versioned request/reply envelope.

Request `{v, id, op, args}`; reply `{v, id, ok: true, result}` or
`{v, id, ok: false, error: {code, message}}`. Unknown fields are ignored so that newer
clients with extra fields still work; a newer major version is refused explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

PROTOCOL = 1
MAX_REQUEST_BYTES = 1 << 20  # a request larger than this gets a `too_large` error reply

BAD_FRAME = "bad_frame"
BAD_VERSION = "bad_version"
UNKNOWN_OP = "unknown_op"
BAD_ARGS = "bad_args"
TOO_LARGE = "too_large"
INTERNAL = "internal"
UNAVAILABLE = "unavailable"
CONFLICT = "conflict"
NOT_FOUND = "not_found"
SPAWN_REFUSED = "spawn_refused"  # spawn: it can never pass as asked (e.g. malformed per-task limits)
RESERVE_SHORT = "reserve_short"  # spawn: a free-resource reserve is short now; the same spawn may pass later


class IpcError(Exception):
    """An error with a machine-readable code that travels back to the caller."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class BadArgs(IpcError):
    def __init__(self, message: str):
        super().__init__(BAD_ARGS, message)


@dataclass
class Request:
    id: Any
    op: str
    args: dict = field(default_factory=dict)


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)


def make_request(req_id: Any, op: str, args: dict | None = None) -> bytes:
    return pack({"v": PROTOCOL, "id": req_id, "op": op, "args": args or {}})


def parse_request(frame: bytes) -> Request:
    """Decode and validate one request frame, raising IpcError with the reason."""
    if len(frame) > MAX_REQUEST_BYTES:
        raise IpcError(TOO_LARGE, f"request of {len(frame)} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit")
    try:
        msg = unpack(frame)
    except Exception as exc:  # msgpack raises several ValueError subclasses and others
        raise IpcError(BAD_FRAME, f"not a msgpack frame: {type(exc).__name__}") from None
    if not isinstance(msg, dict):
        raise IpcError(BAD_FRAME, "a request must be a msgpack map")
    version = msg.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IpcError(BAD_FRAME, "missing protocol version `v`")
    if version > PROTOCOL:
        raise IpcError(BAD_VERSION, f"client speaks protocol v{version}; this daemon speaks v{PROTOCOL}")
    op = msg.get("op")
    if not isinstance(op, str) or not op:
        raise IpcError(BAD_FRAME, "missing `op`")
    args = msg.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise IpcError(BAD_ARGS, "`args` must be a map")
    return Request(id=msg.get("id"), op=op, args=args)


def ok_reply(req_id: Any, result: Any) -> bytes:
    return pack({"v": PROTOCOL, "id": req_id, "ok": True, "result": result})


def error_reply(req_id: Any, code: str, message: str) -> bytes:
    return pack({"v": PROTOCOL, "id": req_id, "ok": False, "error": {"code": code, "message": message}})


def safe_id(frame: bytes) -> Any:
    """Best-effort request id from a frame that failed validation, so the error can be matched."""
    try:
        msg = unpack(frame)
    except Exception:
        return None
    if isinstance(msg, dict):
        rid = msg.get("id")
        if isinstance(rid, (str, int, bytes)) and not isinstance(rid, bool):
            return rid
    return None


# -- argument helpers for handlers -----------------------------------------------------------

_MISSING = object()


def arg(args: dict, name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    """Fetch and type-check one argument; a wrong type or missing value is a BadArgs error."""
    if name not in args or args[name] is None:
        if default is _MISSING:
            raise BadArgs(f"missing argument `{name}`")
        return default
    value = args[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if bool not in kinds and isinstance(value, bool):
        raise BadArgs(f"argument `{name}` must be {_kind_names(kinds)}, got bool")
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kinds):
        raise BadArgs(f"argument `{name}` must be {_kind_names(kinds)}, got {type(value).__name__}")
    return value


def _kind_names(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)
