"""Reading requests on the daemon's socket thread (nst_daemon.requests, .transport): no model."""

from __future__ import annotations

from typing import Any

import pytest

from nst_client import layouts
from nst_client import protocol as P
from nst_client.endpoints import is_local_endpoint
from nst_daemon import requests
from nst_daemon.jobs import Job

# --- request validation (server side, no model) ------------------------------------------------


def _request(**over: Any) -> tuple[dict[str, Any], list[bytes]]:
    content = layouts.describe(4, 3, 4, "u8", 1)
    style = {**layouts.describe(2, 2, 3, "u8", 2), "weight": 0.5}
    header = {
        "type": "stylize",
        "id": "j1",
        "content": content,
        "styles": [style],
        "params": {"iterations": 2},
    }
    header.update(over)
    return header, [b"\0" * 48, b"\0" * 12]


def _parse(header: dict[str, Any], buffers: list[bytes], max_pixels: int = 100) -> Job:
    limits = requests.Limits(max_pixels, P.DEFAULT_MAX_TILE_SIZE)
    return requests.parse_stylize(header, buffers, b"client", limits, "cpu")


def test_parse_stylize_ok() -> None:
    job = _parse(*_request(preview_every=3))
    assert job.id == "j1" and job.params.iterations == 2 and job.preview_every == 3
    assert job.styles[0]["weight"] == 0.5 and job.content["width"] == 4


@pytest.mark.parametrize(
    "over,buffers,code,word",
    [
        (
            {"content": {**layouts.describe(4, 3, 4, "u8", 1), "width": 400}},
            None,
            P.TOO_LARGE,
            "content",
        ),
        ({"content": {**layouts.describe(4, 3, 4, "u8", 3)}}, None, P.BAD_REQUEST, "content.frame"),
        ({}, [b"\0" * 47, b"\0" * 12], P.BAD_IMAGE, "content"),
        ({"styles": []}, None, P.BAD_REQUEST, "styles"),
        (
            {"styles": [{**layouts.describe(2, 2, 3, "u8", 2), "weight": -1}]},
            None,
            P.BAD_REQUEST,
            "styles[0].weight",
        ),
        ({"params": {"nope": 1}}, None, P.BAD_REQUEST, "params.nope"),
        ({"params": {"device": "cuda"}}, None, P.BAD_REQUEST, "params.device"),
        (
            {"params": {"style_layers": [["relu7_1", 1.0]]}},
            None,
            P.BAD_REQUEST,
            "params.style_layers",
        ),
        ({"params": [1]}, None, P.BAD_REQUEST, "params"),
        ({"preview_every": -1}, None, P.BAD_REQUEST, "preview_every"),
    ],
)
def test_parse_stylize_errors(
    over: dict[str, Any], buffers: list[bytes] | None, code: str, word: str
) -> None:
    header, default_buffers = _request(**over)
    with pytest.raises(P.ProtocolError) as info:
        _parse(header, buffers if buffers is not None else default_buffers)
    assert info.value.code == code and word in info.value.message


def test_too_large_checked_before_frame() -> None:
    """A huge descriptor is refused on its numbers alone, whatever the frames hold."""
    huge = layouts.describe(100_000, 100_000, 4, "f32", 1)
    with pytest.raises(P.ProtocolError) as info:
        _parse(*_request(content=huge), max_pixels=P.DEFAULT_MAX_PIXELS)
    assert info.value.code == P.TOO_LARGE


def test_device_auto_or_own_device_accepted() -> None:
    assert requests.parse_params({"device": "auto"}, "cpu").quality == "normal"
    assert requests.parse_params({"device": "cpu"}, "cpu").device == "auto"


@pytest.mark.parametrize(
    "endpoint,local",
    [
        ("tcp://127.0.0.1:5757", True),
        ("tcp://localhost:1", True),
        ("tcp://[::1]:5", True),
        ("tcp://127.8.9.1:5", True),
        ("ipc:///tmp/x", True),
        ("tcp://0.0.0.0:5757", False),
        ("tcp://*:5757", False),
        ("tcp://192.168.1.2:5", False),
        ("tcp://eth0:5", False),
    ],
)
def test_local_endpoints(endpoint: str, local: bool) -> None:
    assert is_local_endpoint(endpoint) is local
