"""The wire pixel layout and the editors' layouts (nst_client.layouts)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from nst_client import layouts

# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_layout_round_trip(dtype: Any, channels: int) -> None:
    arr = (np.arange(5 * 3 * channels).reshape(5, 3, channels) * 7 % 200).astype(dtype)
    desc, data = layouts.from_array(arr, 2)
    assert desc == {
        "width": 3,
        "height": 5,
        "channels": channels,
        "dtype": layouts.wire_dtype(arr),
        "frame": 2,
    }
    assert len(data) == layouts.nbytes(3, 5, channels, desc["dtype"])
    back = layouts.to_array(desc, data)
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


def test_wire_is_little_endian() -> None:
    _, data = layouts.from_array(np.array([[[0x0102]]], dtype=np.uint16), 1)
    assert data == b"\x02\x01"


@pytest.mark.parametrize(
    "desc,word",
    [
        ("x", "expected a map"),
        ({"width": 2, "height": 2, "channels": 3, "dtype": "u8"}, "image.frame"),
        ({"width": "2", "height": 2, "channels": 3, "dtype": "u8", "frame": 1}, "image.width"),
        ({"width": 0, "height": 2, "channels": 3, "dtype": "u8", "frame": 1}, "positive"),
        ({"width": 2, "height": 2, "channels": 5, "dtype": "u8", "frame": 1}, "image.channels"),
        ({"width": 2, "height": 2, "channels": 3, "dtype": "f16", "frame": 1}, "image.dtype"),
    ],
)
def test_check_descriptor_names_field(desc: Any, word: str) -> None:
    with pytest.raises(layouts.LayoutError, match=word.replace(".", r"\.")):
        layouts.check_descriptor(desc)


def test_check_buffer_size() -> None:
    desc = layouts.describe(2, 2, 3, "u16", 1)
    layouts.check_buffer(desc, b"\0" * 24)
    with pytest.raises(layouts.LayoutError, match="holds 23 bytes"):
        layouts.check_buffer(desc, b"\0" * 23)


def test_krita_swap_round_trip() -> None:
    bgra = bytes([1, 2, 3, 4, 5, 6, 7, 8])
    wire, dtype = layouts.krita_to_wire(bgra, "U8")
    assert dtype == "u8" and wire == bytes([3, 2, 1, 4, 7, 6, 5, 8])
    assert layouts.wire_to_krita(wire, "u8") == bgra


def test_convert_dtype_between_wire_dtypes() -> None:
    assert layouts.convert_dtype(bytes([0, 128, 255]), "u8", "u16") == struct.pack(
        "<3H", 0, 128 * 257, 65535
    )
    assert layouts.convert_dtype(struct.pack("<2H", 257, 65535), "u16", "u8") == bytes([1, 255])
    assert layouts.convert_dtype(struct.pack("<3f", -0.5, 0.5, 2.0), "f32", "u8") == bytes(
        [0, 128, 255]
    )
    assert struct.unpack("<2f", layouts.convert_dtype(bytes([0, 255]), "u8", "f32")) == (0.0, 1.0)


def test_gimp_precision_and_channel_rules() -> None:
    assert layouts.gimp_dtype("u8-non-linear") == "u8"
    assert layouts.gimp_dtype("u16-linear") == "u16"
    assert [layouts.gimp_dtype(n) for n in ("u32-linear", "half-linear", "double-perceptual")] == [
        "f32"
    ] * 3
    assert [layouts.channel_count(g, a) for g in (True, False) for a in (False, True)] == [
        1,
        2,
        3,
        4,
    ]
