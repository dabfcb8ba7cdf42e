"""Hypothesis strategies for hostile requests: any msgpack value, in any field of a request.

Shared by the unit property tests (the daemon's parser in-process) and the end-to-end fuzz
run (a real daemon process).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from nst_client import layouts
from nst_client import protocol as P
from nst_client.params import PARAM_NAMES

#: Codes a malformed request may get; `internal` is a bug.
NAMED_ERRORS = {P.BAD_REQUEST, P.BAD_IMAGE, P.TOO_LARGE, P.UNSUPPORTED_PROTOCOL, P.UNKNOWN_JOB}


def nested(depth: int) -> Any:
    """[[[...1...]]]: deeper than Python's repr can go (msgpack allows 1024 levels)."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


#: Every value msgpack carries: scalars at its limits, text, bytes, nested lists and maps.
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = (
    st.none()
    | st.booleans()
    | ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10) | ints, inner, max_size=4)
    ),
    max_leaves=12,
) | st.integers(1, 1000).map(nested)

DESCRIPTOR_KEYS = ("width", "height", "channels", "dtype", "frame")
PARAM_KEYS = (*PARAM_NAMES, "unknown")
#: Paths to every field of a stylize request (a key path into the header).
FIELDS: list[tuple[Any, ...]] = [
    ("id",),
    ("content",),
    ("styles",),
    ("params",),
    ("preview_every",),
    *[("content", k) for k in DESCRIPTOR_KEYS],
    *[("styles", 0, k) for k in (*DESCRIPTOR_KEYS, "weight")],
    *[("params", name) for name in PARAM_KEYS],
]

SURVIVABLE = [r for r in P.REQUESTS if r != P.SHUTDOWN]

#: Headers of any shape: the known keys with any values, or a known type with odd fields.
headers = st.dictionaries(
    st.sampled_from(["type", "id", "protocol", "client", "job", "content", "styles", "params"]),
    values,
) | st.fixed_dictionaries(
    # Every request type but shutdown, which ends the daemon (tests/unit/test_server.py).
    {
        "type": st.sampled_from([r for r in P.REQUESTS if r != P.SHUTDOWN]),
        "id": st.text(max_size=8),
    },
    optional={"protocol": values, "client": values, "job": values, "params": values},
)


def valid_stylize(request_id: str = "j") -> tuple[dict[str, Any], list[bytes]]:
    """A valid, tiny stylize request (2 iterations at 32 px) and its frames."""
    header: dict[str, Any] = {
        "type": "stylize",
        "id": request_id,
        "content": layouts.describe(4, 3, 3, "u8", 1),
        "styles": [{**layouts.describe(2, 2, 3, "u8", 2), "weight": 1.0}],
        "params": {"iterations": 2, "size": 32},
        "preview_every": 0,
    }
    return header, [bytes(36), bytes(12)]


def replaced(header: Any, path: Sequence[Any], value: Any) -> Any:
    """A copy of header with the field at path set to value."""
    copy = list(header) if isinstance(header, list) else dict(header)
    copy[path[0]] = value if len(path) == 1 else replaced(header[path[0]], path[1:], value)
    return copy
