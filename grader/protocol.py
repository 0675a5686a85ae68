"""The wire format between the trusted grader and the sandboxed worker.

One JSON object per line. Only plain data crosses: None, bool, int, float (NaN/inf tagged), str,
lists, string-keyed dicts, n-d arrays (dtype + shape + base64 bytes) and opaque handles to objects
that stay inside the sandbox. Nothing is ever unpickled. This module is imported by both sides, so
it must not import anything beyond the standard library and numpy.
"""
from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

# dtypes allowed across the wire; anything else is rejected on decode.
ALLOWED_DTYPES = frozenset(
    "|b1 |i1 |u1 <i2 <u2 <i4 <u4 <i8 <u8 <f2 <f4 <f8 <c8 <c16".split()
)
MAX_DEPTH = 32
# Bounds on what one message may make the reader build, whatever its size in bytes: 60 MB of short
# strings would otherwise become some 12 million Python objects (about 1 GB) in the grader.
MAX_VALUES = 1_000_000  # JSON values (scalars, strings, lists, objects, dict keys) per message
MAX_ARRAY_BYTES = 256 << 20  # decoded array bytes per message


class ProtocolError(ValueError):
    """Data from the sandbox did not follow the wire format."""


@dataclass(frozen=True)
class Handle:
    """An opaque reference to an object that lives inside the sandbox."""

    id: int
    type_name: str


class TorchArray:
    """A numpy array that should arrive on the other side as a torch tensor."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.ascontiguousarray(array)


def encode(value: Any, handles: Any = None, depth: int = 0) -> Any:
    """Turn a Python value into JSON-ready plain data.

    `handles`, when given, is a callable that stores an unencodable object and returns its Handle;
    without it, unencodable objects raise TypeError.
    """
    if depth > MAX_DEPTH:
        raise TypeError("value nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return {"__int__": str(value)} if abs(value) > 2**53 else value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(float(value))}  # np.float64(inf) -> 'inf'
    if isinstance(value, Handle):
        return {"__handle__": value.id, "type": value.type_name}
    if isinstance(value, TorchArray):
        return _encode_array(value.array, kind="torch")
    if isinstance(value, np.generic):
        return encode(value.item(), handles, depth + 1)
    if isinstance(value, np.ndarray):
        return _encode_array(value, kind="numpy")
    if type(value).__module__.startswith("torch") and type(value).__name__ in ("Tensor", "Parameter"):
        arr = value.detach().cpu().resolve_conj().resolve_neg().numpy()
        return _encode_array(arr, kind="torch")
    if isinstance(value, (list, tuple)):
        items = [encode(v, handles, depth + 1) for v in value]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: encode(v, handles, depth + 1) for k, v in value.items()}}
    if handles is not None:
        return encode(handles(value), None, depth + 1)
    raise TypeError(f"cannot send a {type(value).__name__} across the sandbox boundary")


def _encode_array(arr: np.ndarray, kind: str) -> dict[str, Any]:
    if arr.dtype.kind in "fciub" and arr.dtype.itemsize > 1 and arr.dtype.byteorder not in "<=":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    arr = np.ascontiguousarray(arr)
    dtype = arr.dtype.str
    if dtype not in ALLOWED_DTYPES:
        arr = arr.astype(np.float64) if arr.dtype.kind != "O" else None
        if arr is None:
            raise TypeError("object arrays cannot cross the sandbox boundary")
        dtype = arr.dtype.str
    return {
        "__nd__": kind,
        "dtype": dtype,
        "shape": list(arr.shape),
        "data": base64.b64encode(arr.tobytes()).decode("ascii"),
    }


class _Budget:
    """What one decode may still build: values and array bytes."""

    def __init__(self, values: int, array_bytes: int) -> None:
        self.values, self.array_bytes = values, array_bytes

    def take(self, values: int = 1, array_bytes: int = 0) -> None:
        self.values -= values
        self.array_bytes -= array_bytes
        if self.values < 0:
            raise ProtocolError(f"more than {MAX_VALUES} values in one message")
        if self.array_bytes < 0:
            raise ProtocolError(f"more than {MAX_ARRAY_BYTES >> 20} MB of arrays in one message")


def decode(obj: Any, to_tensor: Any = None, from_handle: Any = None, depth: int = 0, budget: _Budget | None = None) -> Any:
    """Strictly rebuild a value from plain data; raise ProtocolError on anything unexpected.

    `to_tensor` converts arrays tagged as torch (used inside the worker); the grader leaves arrays
    as numpy. `from_handle` maps handle ids back to objects (worker side). One call builds at most
    MAX_VALUES values and MAX_ARRAY_BYTES of arrays.
    """
    if budget is None:
        budget = _Budget(MAX_VALUES, MAX_ARRAY_BYTES)
    budget.take()
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    if obj is None or isinstance(obj, (bool, str, int, float)):
        if isinstance(obj, float) and not math.isfinite(obj):
            raise ProtocolError("bare non-finite float")
        return obj
    if isinstance(obj, list):
        return [decode(v, to_tensor, from_handle, depth + 1, budget) for v in obj]
    if not isinstance(obj, dict):
        raise ProtocolError(f"unexpected JSON type {type(obj).__name__}")
    if "__malformed__" in obj:  # put there by loads() in place of a message too large to parse
        raise ProtocolError(str(obj["__malformed__"])[:300])
    if "__nd__" in obj:
        arr = _decode_array(obj, budget)
        if obj["__nd__"] == "torch" and to_tensor is not None:
            return to_tensor(arr)
        return arr
    if "__float__" in obj:
        text = obj["__float__"]
        if text not in ("nan", "inf", "-inf"):
            raise ProtocolError(f"bad float tag {text!r}")
        return float(text)
    if "__int__" in obj:
        text = obj["__int__"]
        if not isinstance(text, str) or len(text) > 400:
            raise ProtocolError("bad int tag")
        return int(text)
    if "__tuple__" in obj:
        return tuple(decode(v, to_tensor, from_handle, depth + 1, budget) for v in _list(obj["__tuple__"]))
    if "__dict__" in obj:
        inner = obj["__dict__"]
        if not isinstance(inner, dict):
            raise ProtocolError("bad dict tag")
        budget.take(len(inner))  # the keys
        return {str(k): decode(v, to_tensor, from_handle, depth + 1, budget) for k, v in inner.items()}
    if "__handle__" in obj:
        hid, type_name = obj["__handle__"], obj.get("type", "")
        if not isinstance(hid, int) or not isinstance(type_name, str):
            raise ProtocolError("bad handle")
        return from_handle(hid) if from_handle is not None else Handle(hid, type_name[:200])
    raise ProtocolError(f"unknown tagged object with keys {sorted(obj)[:5]}")


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise ProtocolError("expected a list")
    return value


def _decode_array(obj: dict[str, Any], budget: _Budget) -> np.ndarray:
    dtype, shape, data = obj.get("dtype"), obj.get("shape"), obj.get("data")
    if dtype not in ALLOWED_DTYPES:
        raise ProtocolError(f"dtype {dtype!r} not allowed")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ProtocolError("bad array shape")
    if len(shape) > 32 or not isinstance(data, str):
        raise ProtocolError("bad array")
    budget.take(array_bytes=len(data) * 3 // 4)
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    dt = np.dtype(dtype)
    if math.prod(shape) * dt.itemsize != len(raw):
        raise ProtocolError(f"array bytes ({len(raw)}) do not match shape {shape} and dtype {dtype}")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, allow_nan=False, separators=(",", ":")).encode("utf-8") + b"\n"


_REPLY_ID = re.compile(rb'\{"id":(\d{1,15}),')


def loads(line: bytes) -> dict[str, Any]:
    """One message. A line that would hold more than MAX_VALUES values is not parsed: it becomes a
    reply whose value fails to decode (that request fails as malformed), or a ProtocolError."""
    # Every JSON value but the first follows a ',' or ':' or opens a '[' or '{' (counting those inside
    # strings too only overestimates): a bound on the objects json.loads would build, read in C.
    bound = line.count(b",") + line.count(b":") + line.count(b"[") + line.count(b"{") + 1
    if bound > MAX_VALUES:
        match = _REPLY_ID.match(line)
        if match is None:
            raise ProtocolError(f"malformed message: more than {MAX_VALUES} values")
        return {"id": int(match[1]), "ok": True,
                "value": {"__malformed__": f"the reply holds more than {MAX_VALUES} values (lists, strings, numbers)"}}
    try:
        message = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # ValueError: bad UTF-8/JSON, ints over Python's digit limit
        raise ProtocolError(f"malformed message: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not an object")
    return message


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"non-standard JSON constant {name}")
