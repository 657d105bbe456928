"""Counter-based training randomness: Philox4x32-10 bit-exact with its published test vectors, rows that depend on
their own global index only, sound distributions."""
import math

import pytest
import torch

from pixelfolder.training.randomness import Draws, chunk_indices, philox4x32


def words(values):
    return tuple(torch.tensor(v, dtype=torch.int64) for v in values)


@pytest.mark.parametrize("counter, key, expected", [
    # Random123's known-answer tests (kat_vectors: philox4x32 10 rounds)
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox4x32(words(counter), key)) == expected


def test_a_row_depends_on_its_own_index_only():
    everything = Draws(3, 7, "Gmain", range(8))
    z, noise, u = everything.normal(5), everything.normal(1, 4, 4), everything.uniform(3)
    for indices in (range(1, 8, 2), range(6, 8), [5, 0]):
        part = Draws(3, 7, "Gmain", indices)
        rows = list(indices)
        assert torch.equal(part.normal(5), z[rows])
        assert torch.equal(part.normal(1, 4, 4), noise[rows])
        assert torch.equal(part.uniform(3), u[rows])


def test_chunks_split_a_step_into_disjoint_strided_sets():
    chunks = [list(chunk_indices(8, c, 4)) for c in range(4)]
    assert chunks == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_seed_step_tag_and_draw_order_each_change_the_numbers():
    base = Draws(0, 0, "a", range(4)).normal(16)
    for other in (Draws(1, 0, "a", range(4)), Draws(0, 1, "a", range(4)), Draws(0, 0, "b", range(4))):
        assert not torch.equal(other.normal(16), base)
    second = Draws(0, 0, "a", range(4))
    second.normal(16)
    assert not torch.equal(second.normal(16), base)
    assert len({tuple(row.tolist()) for row in base}) == 4          # rows differ


def test_distributions():
    d = Draws(0, 0, "stats", range(64))
    z = d.normal(4096).flatten()
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs((z.abs() < 1).float().mean() - math.erf(1 / math.sqrt(2))) < 0.005     # 68.3 % within 1 sigma
    u = d.uniform(4096).flatten()
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    k = Draws(0, 0, "ints", range(40000)).integers(1, 5)
    counts = torch.bincount(k, minlength=6)
    assert counts[0] == 0 and counts[5] == 0 and (counts[1:5] - 10000).abs().max() < 400


def test_made_on_the_device_of_the_indices():
    d = Draws(0, 0, "x", torch.arange(3), device="meta")
    assert d.normal(2).device.type == "meta"
