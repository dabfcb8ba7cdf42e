"""The sizes of a job's scales, tiles and style passes, and the daemon's limits on them."""

from __future__ import annotations

import pytest

from nst_client.params import TILE_OVERLAP, make_params
from nst_core.plan import (
    VGG_STRIDE,
    LimitError,
    check_limits,
    scale_sizes,
    style_pieces,
    style_size,
    tile_spans,
)


def test_scales_go_coarse_to_fine_and_never_above_the_content() -> None:
    assert scale_sizes(512, 1024, 512, 128) == [(64, 128), (128, 256), (256, 512)]
    assert scale_sizes(100, 200, 512, 128) == [(100, 200)]
    assert scale_sizes(300, 400, "full", 101) == [(150, 200), (300, 400)]
    assert scale_sizes(300, 400, "full", 100) == [(75, 100), (150, 200), (300, 400)]


def test_tiles_cover_and_overlap() -> None:
    spans = tile_spans(1000, 300, overlap=64)
    assert spans[0][0] == 0 and spans[-1][1] == 1000
    assert all(b - a == 300 for a, b in spans)
    assert all(spans[i][1] - spans[i + 1][0] >= 64 for i in range(len(spans) - 1))
    assert tile_spans(200, 300) == [(0, 200)]


@pytest.mark.parametrize("length", [1, 256, 257, 300, 1000, 4097])
def test_style_pieces_partition_the_side_and_each_window_fits_a_tile(length: int) -> None:
    pieces = style_pieces(length, 256)
    kept = [(a, b) for _, a, b, _ in pieces]
    assert kept[0][0] == 0 and kept[-1][1] == length
    assert all(kept[i][1] == kept[i + 1][0] for i in range(len(kept) - 1))
    for w0, a, b, w1 in pieces:
        assert 0 <= w0 <= a < b <= w1 <= length and w1 - w0 <= 256
        # Every layer's pixels map back exactly: windows and kept parts start on VGG's stride.
        assert w0 % VGG_STRIDE == 0 and a % VGG_STRIDE == 0
        assert b == length or b % VGG_STRIDE == 0
        assert (w0 == 0 or a - w0 == TILE_OVERLAP) and (w1 == length or w1 - b == TILE_OVERLAP)


def test_style_size_follows_the_working_size_and_style_scale() -> None:
    assert style_size((1000, 500), (256, 512), 1.0) == (512, 256)
    assert style_size((1000, 500), (256, 512), 2.0) == (1024, 512)


def test_style_scale_that_would_blow_the_pixel_limit_is_refused_before_any_work() -> None:
    # A 64x48 job with a large style_scale on a --max-pixels 100000 daemon.
    p = make_params({"style_scale": 4.0, "size": "full"})
    with pytest.raises(LimitError, match=r"style_scale: 4 makes styles\[0\] .* over .*100000"):
        check_limits((1000, 1000), [(64, 48)], p, max_pixels=100_000, max_tile=1024)
    check_limits((300, 300), [(64, 48)], p, max_pixels=1_500_000, max_tile=1024)


def test_tile_size_over_the_daemons_limit_is_refused() -> None:
    p = make_params({"tile_size": 4096})
    with pytest.raises(LimitError, match=r"tile_size: 4096 is over .* 1024 \(--max-tile-size\)"):
        check_limits((64, 64), [(64, 64)], p, max_pixels=1 << 20, max_tile=1024)
