"""Each metric's arithmetic against an independent, literal computation written here."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from pixelfolder.errors import PixelfolderError
from pixelfolder.metrics.bpd import bits_per_dim
from pixelfolder.metrics.fid import feature_stats, fid_from_features, fid_from_stats_and_features, frechet_distance
from pixelfolder.metrics.isc import inception_score
from pixelfolder.metrics.kid import kid_from_features
from pixelfolder.metrics.ppl import pair_distances, ppl_from_distances
from pixelfolder.metrics.pr import precision_recall
from pixelfolder.metrics.resize import resize_bilinear_tf1
from tests.helpers import UniformLikelihood


def correlated_features(n, d, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / math.sqrt(d)
    return rng.normal(size=(n, d)) @ mix + shift


# ---------------------------------------------------------------------------------------------------------- FID

def reference_fid(a, b):
    """TTUR/pytorch-fid's formula with scipy's general matrix square root."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_matches_scipy_sqrtm():
    a, b = correlated_features(300, 24, 0), correlated_features(250, 24, 1, shift=0.3)
    ours, ref = fid_from_features(a, b), reference_fid(a, b)
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert ours > 1


def test_the_small_sample_route_gives_the_same_fid():
    real, fake = correlated_features(300, 24, 0), correlated_features(10, 24, 1, shift=0.3)   # 10 - 1 < 24
    ours = fid_from_stats_and_features(*feature_stats(real), fake)
    assert ours == pytest.approx(fid_from_features(real, fake), rel=1e-7)     # the D x D route: sqrt of rounding
    assert ours == pytest.approx(reference_fid(real, fake), rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero_even_when_singular():
    a = correlated_features(40, 64, 2)                    # fewer samples than dimensions: singular covariance
    # the sqrt of rounding-level eigenvalues of the null space bounds the accuracy (scipy's sqrtm: the same order)
    assert abs(fid_from_features(a, a)) < 1e-6 * np.trace(np.cov(a, rowvar=False))
    b = correlated_features(500, 16, 3)
    assert abs(fid_from_features(b, b)) < 1e-10


def test_fid_of_a_mean_shift_is_its_squared_norm():
    a = correlated_features(200, 10, 4)
    shift = np.linspace(-1, 1, 10)
    assert fid_from_features(a, a + shift) == pytest.approx(float((shift ** 2).sum()), rel=1e-9)


def test_frechet_distance_checks_dimensions():
    mu, sigma = feature_stats(correlated_features(10, 4, 5))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(mu, sigma, mu[:3], sigma[:3, :3])


# ---------------------------------------------------------------------------------------------------------- KID

def literal_mmd2(x, y):
    m, d = len(x), x.shape[1]
    k = lambda u, v: (float(np.dot(u, v)) / d + 1) ** 3          # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_full_subsets_match_the_literal_double_loop():
    real, fake = correlated_features(12, 6, 6), correlated_features(12, 6, 7, shift=0.5)
    # m = n: every subset is a permutation of the whole set, and the estimator is permutation invariant
    assert kid_from_features(real, fake, num_subsets=3) == pytest.approx(literal_mmd2(fake, real), rel=1e-12)


def test_kid_subsets_are_drawn_from_a_seeded_randomstate():
    real, fake = correlated_features(15, 5, 8), correlated_features(11, 5, 9, shift=0.2)
    rng = np.random.RandomState(3)
    expected = []
    for _ in range(4):
        i = rng.choice(len(fake), 6, replace=False)
        j = rng.choice(len(real), 6, replace=False)
        expected.append(literal_mmd2(fake[i], real[j]))
    ours = kid_from_features(real, fake, num_subsets=4, max_subset_size=6, seed=3)
    assert ours == pytest.approx(np.mean(expected), rel=1e-12)


# ------------------------------------------------------------------------------------------- precision / recall

def literal_precision_recall(real, fake, k):
    def radius(points, i):
        return sorted(math.dist(points[i], points[j]) for j in range(len(points)) if j != i)[k - 1]

    def inside(p, points):
        return any(math.dist(p, points[j]) <= radius(points, j) for j in range(len(points)))

    precision = sum(inside(f, real) for f in fake) / len(fake)
    recall = sum(inside(r, fake) for r in real) / len(real)
    return precision, recall


def test_precision_recall_match_the_literal_knn_definition():
    real = correlated_features(30, 4, 10).astype(np.float32)
    fake = (correlated_features(25, 4, 11) * 1.6 + 0.7).astype(np.float32)
    ours = precision_recall(real, fake, k=3)
    ref = literal_precision_recall(real, fake, 3)
    assert ours == pytest.approx(ref, abs=1e-6)
    assert 0 < ours[0] < 1 and 0 < ours[1] < 1
    assert precision_recall(real, real, k=3) == (1.0, 1.0)


def test_precision_recall_need_k_plus_one_points():
    with pytest.raises(ValueError, match="at least 4"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))


# ----------------------------------------------------------------------------------------------------------- IS

def test_inception_score_matches_the_literal_formula():
    logits = np.random.default_rng(12).normal(scale=3, size=(53, 7))
    scores = []
    for s in range(10):
        part = logits[s * 53 // 10:(s + 1) * 53 // 10]
        p = [[math.exp(v) / sum(math.exp(u) for u in row) for v in row] for row in part]
        marginal = [sum(row[c] for row in p) / len(p) for c in range(7)]
        kl = [sum(row[c] * (math.log(row[c]) - math.log(marginal[c])) for c in range(7)) for row in p]
        scores.append(math.exp(sum(kl) / len(kl)))
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(float(np.mean(scores)), rel=1e-12)
    assert std == pytest.approx(float(np.std(scores)), rel=1e-9)
    assert inception_score(np.zeros((20, 5)))[0] == pytest.approx(1.0)      # one uniform class: IS = 1


# ---------------------------------------------------------------------------------------------------------- PPL

class ToyMapping(torch.nn.Module):
    def __init__(self, z_dim):
        super().__init__()
        self.scale = torch.linspace(0.5, 2.0, z_dim)

    def forward(self, z):
        return (z * self.scale).unsqueeze(1).repeat(1, 2, 1)              # (B, n_latent=2, w_dim)


class ToySynthesis(torch.nn.Module):
    def __init__(self, w_dim, size):
        super().__init__()
        self.size = size
        self.proj = torch.randn(3 * size * size, w_dim, generator=torch.Generator().manual_seed(0))

    def noise_shapes(self, size=None):
        return [(self.size, self.size)]

    def forward(self, ws, noise_mode="const", noise=None, size=None, return_stages=False):
        img = (ws[:, 0] @ self.proj.T).view(-1, 3, self.size, self.size)
        return img + noise[0]                                            # shared noise cancels in the difference


class ToyG(torch.nn.Module):
    z_dim = 6

    def __init__(self):
        super().__init__()
        self.mapping, self.synthesis = ToyMapping(self.z_dim), ToySynthesis(self.z_dim, 4)


def test_ppl_pair_distance_is_the_scaled_difference_in_w():
    G = ToyG()
    mse = lambda a, b: (a - b).square().mean(dim=(1, 2, 3))              # noqa: E731  a stand-in "LPIPS"
    eps = 1e-2
    d = pair_distances(G, mse, range(5), epsilon=eps, seed=7)
    for i in range(5):
        g = torch.Generator().manual_seed(7 + i)
        z = torch.randn(2, G.z_dim, generator=g)
        w = z * G.mapping.scale
        diff = (eps * (w[1] - w[0])) @ G.synthesis.proj.T
        assert d[i].item() == pytest.approx(diff.square().mean().item() / eps ** 2, rel=1e-4)
    alone = pair_distances(G, mse, [3], epsilon=eps, seed=7)                           # batch independent
    assert torch.allclose(alone, d[3:4], rtol=1e-5)


def test_ppl_drops_the_lowest_and_highest_percent():
    dist = np.random.default_rng(0).exponential(size=200) ** 3       # skewed: trimming changes the mean
    s = sorted(dist)
    lo, hi = s[int(math.floor(0.01 * 199))], s[int(math.ceil(0.99 * 199))]
    kept = [v for v in dist if lo <= v <= hi]
    assert ppl_from_distances(dist) == pytest.approx(sum(kept) / len(kept))
    assert ppl_from_distances(dist) != pytest.approx(dist.mean())


# ---------------------------------------------------------------------------------------------------------- bpd

def test_bits_per_dim_of_the_uniform_model_is_8():
    batches = [torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, 3, 4, 4, dtype=torch.uint8)]
    assert bits_per_dim(UniformLikelihood(), batches) == 8.0


def test_bits_per_dim_averages_over_all_dimensions():
    class Half(UniformLikelihood):
        def nll_bits(self, x):                 # image k costs k bits in total
            return torch.arange(x.shape[0], dtype=torch.float64)
    assert bits_per_dim(Half(), [torch.zeros(4, 1, 2, 2, dtype=torch.uint8)]) == pytest.approx(6 / 16)


def test_bits_per_dim_refuses_a_generator():
    import pixelfolder
    with pytest.raises(PixelfolderError, match="bpd needs a likelihood model .* generator"):
        bits_per_dim(pixelfolder.create("pixelfolder-tiny", compute_w_avg=False), [])


# ------------------------------------------------------------------------------------------------ TF1 resizing

def literal_tf1_resize(img, out_h, out_w):
    """tf.image.resize_bilinear(align_corners=False) per output pixel: src = dst * in / out, no half-pixel offset."""
    c, h, w = img.shape
    out = np.zeros((c, out_h, out_w), dtype=np.float64)
    for i in range(out_h):
        y = i * h / out_h
        y0, y1 = int(math.floor(y)), min(int(math.floor(y)) + 1, h - 1)
        for j in range(out_w):
            x = j * w / out_w
            x0, x1 = int(math.floor(x)), min(int(math.floor(x)) + 1, w - 1)
            top = img[:, y0, x0] + (img[:, y0, x1] - img[:, y0, x0]) * (x - x0)
            bottom = img[:, y1, x0] + (img[:, y1, x1] - img[:, y1, x0]) * (x - x0)
            out[:, i, j] = top + (bottom - top) * (y - y0)
    return out


@pytest.mark.parametrize("src, dst", [((7, 5), (13, 11)), ((16, 16), (29, 29)), ((30, 20), (9, 8))])
def test_tf1_resize_matches_the_literal_definition(src, dst):
    img = torch.randint(0, 256, (1, 3, *src), generator=torch.Generator().manual_seed(1)).float()
    ours = resize_bilinear_tf1(img, dst)[0].double().numpy()
    assert np.abs(ours - literal_tf1_resize(img[0].double().numpy(), *dst)).max() < 1e-3
    assert torch.equal(resize_bilinear_tf1(img, src), img)
    # unlike PyTorch's half-pixel bilinear: the first output pixel is exactly the first input pixel
    assert torch.equal(resize_bilinear_tf1(img, dst)[..., 0, 0], img[..., 0, 0])
