"""Fold / Unfold channel order, coordinate grids and learned Fourier features."""
import pytest
import torch
import torch.nn.functional as F

from pixelfolder.layers import LFF, coord_grid, fold, unfold


def fold_loops(x):
    """out[b, (dy*2+dx)*C + c, i, j] = x[b, c, 2i+dy, 2j+dx]."""
    b, c, h, w = x.shape
    out = torch.empty(b, 4 * c, h // 2, w // 2, dtype=x.dtype)
    for dy in range(2):
        for dx in range(2):
            for ch in range(c):
                for i in range(h // 2):
                    for j in range(w // 2):
                        out[:, (dy * 2 + dx) * c + ch, i, j] = x[:, ch, 2 * i + dy, 2 * j + dx]
    return out


def test_fold_matches_loop_definition():
    x = torch.randn(2, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fold(x), fold_loops(x))


def test_fold_is_pixel_unshuffle_with_channels_reordered():
    x = torch.randn(2, 3, 6, 4, generator=torch.Generator().manual_seed(1))
    b, c, h, w = x.shape
    pu = F.pixel_unshuffle(x, 2)                      # channel c*4 + dy*2 + dx
    reordered = pu.view(b, c, 4, h // 2, w // 2).transpose(1, 2).reshape(b, 4 * c, h // 2, w // 2)
    assert torch.equal(fold(x), reordered)
    assert not torch.equal(fold(x), pu)              # the order really differs (C > 1)


@pytest.mark.parametrize("shape", [(1, 1, 2, 2), (2, 3, 4, 6), (1, 5, 8, 8)])
def test_unfold_inverts_fold(shape):
    x = torch.randn(*shape)
    assert torch.equal(unfold(fold(x)), x)
    y = torch.randn(shape[0], 4 * shape[1], shape[2], shape[3])
    assert torch.equal(fold(unfold(y)), y)


def test_fold_twice_channel_order():
    x = torch.randn(2, 3, 8, 4, generator=torch.Generator().manual_seed(2))
    b, c, h, w = x.shape
    out = fold(fold(x))
    assert out.shape == (b, 16 * c, h // 4, w // 4)
    for dy2 in range(2):
        for dx2 in range(2):
            for dy1 in range(2):
                for dx1 in range(2):
                    for ch in range(c):
                        k = ((dy2 * 2 + dx2) * 4 + dy1 * 2 + dx1) * c + ch
                        for i in range(h // 4):
                            for j in range(w // 4):
                                assert torch.equal(out[:, k, i, j],
                                                   x[:, ch, 4 * i + 2 * dy2 + dy1, 4 * j + 2 * dx2 + dx1])


@pytest.mark.parametrize("h,w", [(5, 5), (3, 7), (8, 2)])
def test_coord_grid(h, w):
    g = coord_grid(h, w)
    assert g.shape == (1, 2, h, w)
    for i in range(h):
        for j in range(w):
            assert g[0, 0, i, j].item() == pytest.approx(-1 + 2 * j / (w - 1), abs=1e-6)
            assert g[0, 1, i, j].item() == pytest.approx(-1 + 2 * i / (h - 1), abs=1e-6)
    assert g[0, 0, :, 0].eq(-1).all() and g[0, 0, :, -1].eq(1).all()
    assert g[0, 1, 0, :].eq(-1).all() and g[0, 1, -1, :].eq(1).all()


def test_coord_grid_dtype():
    assert coord_grid(3, 4, dtype=torch.float64).dtype == torch.float64


def test_lff_equals_sin_of_1x1_conv():
    torch.manual_seed(0)
    lff = LFF(6)
    coords = torch.cat([coord_grid(5, 7), torch.randn(1, 2, 5, 7)])
    ref = torch.sin(F.conv2d(coords, lff.weight[:, :, None, None], lff.bias))
    out = lff(coords)
    assert out.shape == (2, 6, 5, 7)
    err = (out - ref).abs().max().item()
    assert err <= 1e-5 * ref.abs().max().item()


def test_lff_grid_equals_lff_on_coordinate_grid():
    torch.manual_seed(3)
    lff = LFF(16)
    for h, w in ((8, 8), (5, 12)):
        ref = lff(coord_grid(h, w))
        assert (lff.grid(h, w) - ref).abs().max() <= 1e-5
