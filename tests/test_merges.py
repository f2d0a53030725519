"""Merge math: properties as in PEFT's merge tests, on random factors (pure functions)."""

import mlx_lc  # noqa: F401

import mlx.core as mx
import numpy as np
import pytest

from mlx_lc.merges import cat, dare_linear, dare_ties, factorize, linear, magnitude_prune, svd, ties
from mlx_lc.merges.ties import magnitude_mask


def factors(seed, d_in=24, d_out=16, r=4):
    k1, k2 = mx.random.split(mx.random.key(seed))
    return mx.random.normal((d_in, r), key=k1), mx.random.normal((r, d_out), key=k2)


def close(x, y, tol=1e-4):
    return np.allclose(np.array(x), np.array(y), atol=tol, rtol=tol)


def test_linear_single_adapter_weight_one_is_identity():
    a, b = factors(0)
    a2, b2 = linear([a], [b], [1.0])
    assert close(a2, a) and close(b2, b)


def test_linear_is_the_factor_mean_with_cross_terms():
    (a1, b1), (a2, b2) = factors(0), factors(1)
    am, bm = linear([a1, a2], [b1, b2], [0.5, 0.5])
    assert close(am, (a1 + a2) / 2) and close(bm, (b1 + b2) / 2)
    # the paper's linear merge is not the mean of the updates: cross terms a1 b2 + a2 b1 remain
    assert not close(am @ bm, (a1 @ b1 + a2 @ b2) / 2, tol=1e-2)
    assert close(am @ bm, (a1 @ b1 + a2 @ b2 + a1 @ b2 + a2 @ b1) / 4)


def test_cat_is_the_exact_weighted_sum_and_twins_cancel():
    (a1, b1), (a2, b2) = factors(0, r=3), factors(1, r=5)
    a, b = cat([a1, a2], [b1, b2], [0.7, -1.2])
    assert a.shape == (24, 8) and b.shape == (8, 16)
    assert close(a @ b, 0.7 * a1 @ b1 - 1.2 * a2 @ b2)
    a, b = cat([a1, a1], [b1, b1], [0.8, -0.8])
    assert close(a @ b, mx.zeros((24, 16)))
    a, b = cat([a1], [b1], [-1.0])
    assert close(a @ b, -(a1 @ b1))


def test_svd_is_exact_at_full_rank_and_optimal_when_truncated():
    (a1, b1), (a2, b2) = factors(0), factors(1)
    exact = a1 @ b1 + a2 @ b2
    a, b = svd([a1, a2], [b1, b2], [1.0, 1.0], rank=8)
    assert close(a @ b, exact, tol=1e-3)
    a, b = svd([a1, a2], [b1, b2], [1.0, 1.0], rank=3)
    s = np.linalg.svd(np.array(exact), compute_uv=False)
    err = np.linalg.norm(np.array(exact - a @ b))
    assert np.isclose(err, np.sqrt((s[3:] ** 2).sum()), rtol=1e-3)  # Eckart-Young
    ad, bd = factorize(exact, 3)
    assert close(ad @ bd, a @ b, tol=1e-3)


def test_magnitude_mask_keeps_the_top_fraction():
    x = mx.array(np.arange(1, 101, dtype=np.float32).reshape(10, 10) * np.where(np.arange(100) % 2, 1, -1).reshape(10, 10))
    m = np.array(magnitude_mask(x, 0.2))
    assert m.sum() == 20 and np.all(np.abs(np.array(x))[m == 1] > 80)


def test_delta_merges_of_one_adapter_at_full_density_are_identity():
    a, b = factors(3)
    d = a @ b
    for fn in (ties, magnitude_prune):
        assert close(fn([d], [1.0], 1.0), d)
    assert close(dare_linear([d], [1.0], 1.0, seed=0), d)
    assert close(dare_ties([d], [1.0], 1.0, seed=0), d)
    assert close(magnitude_prune([d], [-1.0], 1.0), -d)


def test_ties_elects_sign_and_averages_agreeing_entries():
    d1 = mx.array([[1.0, -2.0, 3.0]])
    d2 = mx.array([[3.0, 1.0, -1.0]])
    d3 = mx.array([[-1.0, -2.0, 1.0]])
    out = np.array(ties([d1, d2, d3], [1.0, 1.0, 1.0], density=1.0))
    # column 0: total +3 -> mean of {1, 3}; column 1: total -3 -> mean of {-2, -2}; column 2: +3 -> mean of {3, 1}
    assert np.allclose(out, [[2.0, -2.0, 2.0]])


def peft_ties_reference(deltas, weights, density):
    """PEFT's merge_utils.ties in numpy: trim each task tensor to its top-`density` magnitudes, elect
    the sign from the sum of the trimmed (unweighted) tensors, then weight them and average the
    entries that agree with it, dividing by how many agree."""
    trimmed = []
    for d in deltas:
        if density < 1:
            keep = np.zeros(d.size)
            keep[np.argsort(-np.abs(d).ravel())[: int(density * d.size)]] = 1
            d = d * keep.reshape(d.shape)
        trimmed.append(d)
    trimmed = np.stack(trimmed)
    agree = np.sign(trimmed) == np.where(trimmed.sum(axis=0) >= 0, 1, -1)
    w = np.array(weights).reshape(-1, *[1] * (trimmed.ndim - 1))
    return (trimmed * w * agree).sum(axis=0) / np.maximum(agree.sum(axis=0), 1)


@pytest.mark.parametrize("density", [1.0, 0.5])
def test_ties_matches_peft_with_unequal_weights(density):
    deltas = [np.array(a @ b) for a, b in (factors(6), factors(7))]
    # with weights 1 and 0.5 the weighted and unweighted totals disagree in sign on many entries
    want = peft_ties_reference(deltas, [1.0, 0.5], density)
    got = np.array(ties([mx.array(d) for d in deltas], [1.0, 0.5], density))
    assert np.allclose(got, want, atol=1e-5)


def test_ties_weight_scales_the_update_not_its_vote():
    d1, d2 = mx.array([[1.0, 2.0]]), mx.array([[-3.0, -1.0]])
    out = np.array(ties([d1, d2], [1.0, 0.25], density=1.0))
    # column 0: unweighted total -2 elects -, so only d2's weighted -0.75 counts (not d1's 1);
    # column 1: total +1 elects +, d1's 2 alone
    assert np.allclose(out, [[-0.75, 2.0]])


def test_dare_ties_elects_the_sign_as_peft_does():
    # at density 1 nothing is dropped, so PEFT's dare_ties is its ties
    deltas = [np.array(a @ b) for a, b in (factors(6), factors(7))]
    got = dare_ties([mx.array(d) for d in deltas], [1.0, 0.5], 1.0, seed=0)
    assert np.allclose(np.array(got), peft_ties_reference(deltas, [1.0, 0.5], 1.0), atol=1e-5)


def test_ties_of_identical_updates_is_that_update():
    a, b = factors(4)
    d = a @ b
    # identical updates: TIES at full density returns their (sign-consistent) mean
    assert close(ties([d, d], [1.0, 1.0], 1.0), d)


def test_dare_is_unbiased_and_seeded():
    d = mx.ones((200, 200))
    out = dare_linear([d], [1.0], 0.3, seed=1)
    vals = np.unique(np.array(out))
    assert len(vals) == 2 and vals[0] == 0.0 and np.isclose(vals[1], 1 / 0.3)
    assert abs(float(out.mean()) - 1.0) < 0.05  # E[mask / density] = 1
    assert close(out, dare_linear([d], [1.0], 0.3, seed=1))
    assert not close(out, dare_linear([d], [1.0], 0.3, seed=2))


@pytest.mark.parametrize("density", [0.1, 0.5])
def test_density_controls_sparsity(density):
    a, b = factors(5, 64, 64, 8)
    out = np.array(magnitude_prune([a @ b], [1.0], density))
    assert abs((out != 0).mean() - density) < 0.01
