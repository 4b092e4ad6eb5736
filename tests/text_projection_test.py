"""Tests for kgjax.text.projection: initial tables from text and the ridge text map."""

import numpy as np
import pytest

from kgjax.text import projection as tp


def _text(n=40, width=12, seed=0):
    rng = np.random.default_rng(seed)
    # One dimension with a huge scale, like BERT's outlier dimensions.
    return rng.normal(size=(n, width)) * np.r_[100.0, np.ones(width - 1)]


def _standardise(x):
    """What `Standardiser` computes: unit rows, then z-scores."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return (unit - unit.mean(0)) / unit.std(0)


def _pairwise(x):
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


@pytest.mark.parametrize("method", tp.PROJECTIONS)
@pytest.mark.parametrize("complex_dim", [None, 9])
def test_project_scale_shape_and_seed(method, complex_dim):
    text = _text()
    fit = np.arange(30)
    table = tp.project(
        text, fit, width=18, bound=0.3, method=method, complex_dim=complex_dim, seed=1
    )
    assert table.shape == (40, 18) and table.dtype == np.float32
    # The fitted rows have the root mean square of Uniform(-0.3, 0.3) in the text columns.
    text_columns = slice(None) if method == "random" else slice(0, 12)
    if complex_dim is not None and method == "pca":
        text_columns = tp.complex_columns(12, complex_dim)
    rms = np.sqrt(np.mean(table[fit][:, text_columns].astype(np.float64) ** 2))
    np.testing.assert_allclose(rms, 0.3 / np.sqrt(3), rtol=1e-5)
    again = tp.project(
        text, fit, width=18, bound=0.3, method=method, complex_dim=complex_dim, seed=1
    )
    np.testing.assert_array_equal(table, again)
    other = tp.project(
        text, fit, width=18, bound=0.3, method=method, complex_dim=complex_dim, seed=2
    )
    assert not np.array_equal(table, other)  # random matrix (random) or fill noise (pca)


def test_pca_keeps_the_standardised_geometry_and_fills_the_rest():
    text = _text()
    fit = np.arange(40)
    table = tp.project(text, fit, width=20, bound=0.5, method="pca").astype(np.float64)
    standardised = _standardise(text)
    # With the full rank kept, PCA is a rotation: distances scale by one common factor.
    ratio = (
        _pairwise(table[:, :12])[np.triu_indices(40, 1)]
        / _pairwise(standardised)[np.triu_indices(40, 1)]
    )
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
    # Columns beyond the rank are the uniform init's noise, never zero.
    rest = table[:, 12:]
    assert np.all(np.abs(rest) <= 0.5) and np.all(rest != 0)
    # The first principal component carries the most variance.
    variances = table[:, :12].var(axis=0)
    assert variances[0] == variances.max() and np.all(np.diff(variances) <= 1e-6)


def test_complex_columns_pair_components_as_re_and_im():
    np.testing.assert_array_equal(tp.complex_columns(5, 3), [0, 3, 1, 4, 2])
    text = _text()
    real = tp.project(text, np.arange(40), width=24, bound=0.5, method="pca")
    cplx = tp.project(text, np.arange(40), width=24, bound=0.5, method="pca", complex_dim=12)
    # Component 0 -> re of coordinate 0 (column 0); component 1 -> im of coordinate 0 (12).
    np.testing.assert_allclose(cplx[:, 0], real[:, 0], rtol=1e-6)
    np.testing.assert_allclose(cplx[:, 12], real[:, 1], rtol=1e-6)
    np.testing.assert_allclose(cplx[:, 1], real[:, 2], rtol=1e-6)


def test_project_statistics_come_from_the_fitted_rows_only():
    text = _text()
    fit = np.arange(30)
    changed = text.copy()
    changed[35] += 1000.0  # an unfitted entity with a wild text
    for method in tp.PROJECTIONS:
        a = tp.project(text, fit, width=10, bound=0.5, method=method)
        b = tp.project(changed, fit, width=10, bound=0.5, method=method)
        rows = np.arange(40) != 35
        np.testing.assert_array_equal(a[rows], b[rows])
        assert not np.array_equal(a[35], b[35])


def test_project_errors():
    text = _text()
    with pytest.raises(ValueError, match="projection must be one of"):
        tp.project(text, np.arange(5), width=4, bound=1.0, method="svd")
    with pytest.raises(ValueError, match="at least two"):
        tp.project(text, np.arange(1), width=4, bound=1.0)
    with pytest.raises(ValueError, match="width 8"):
        tp.project(text, np.arange(5), width=6, bound=1.0, complex_dim=4)


def _brute_force_ridge(x, y, l2):
    """Closed-form ridge on standardised, centred x with an explicit hat matrix."""
    z = _standardise(x)
    yc = y - y.mean(0)
    w = np.linalg.solve(z.T @ z + l2 * np.eye(z.shape[1]), z.T @ yc)
    hat = z @ np.linalg.solve(z.T @ z + l2 * np.eye(z.shape[1]), z.T)
    n = len(x)
    gcv = np.sum((yc - hat @ yc) ** 2) / n / (1 - np.trace(hat) / n) ** 2
    return w, gcv


def test_ridge_matches_the_closed_form_and_gcv_picks_the_minimum():
    rng = np.random.default_rng(0)
    x = _text(60, 8)
    y = x @ rng.normal(size=(8, 5)) * 0.01 + rng.normal(size=(60, 5))
    grid = np.logspace(-2, 3, 11)
    fitted = tp.fit_text_map(x, y, grid=grid)
    scale = np.mean(np.linalg.svd(_standardise(x), compute_uv=False) ** 2)
    brute = [_brute_force_ridge(x, y, g * scale) for g in grid]
    best = int(np.argmin([gcv for _, gcv in brute]))
    np.testing.assert_allclose(fitted.l2, grid[best] * scale, rtol=1e-9)
    np.testing.assert_allclose(fitted.weights, brute[best][0], rtol=1e-6, atol=1e-9)
    # The map is standardise -> weights -> + mean.
    z = _standardise(x)
    np.testing.assert_allclose(fitted(x), z @ brute[best][0] + y.mean(0), rtol=1e-5, atol=1e-5)
    assert fitted.num_fitted == 60


def test_ridge_recovers_a_linear_map_and_refuses_noise():
    rng = np.random.default_rng(1)
    x = _text(200, 10)
    truth = rng.normal(size=(10, 4))
    z = _standardise(x)
    exact = tp.fit_text_map(x, z @ truth + 3.0)
    assert exact.r2 > 0.999
    np.testing.assert_allclose(exact(x[:5]), z[:5] @ truth + 3.0, atol=1e-2)
    noise = tp.fit_text_map(x, rng.normal(size=(200, 4)))
    assert noise.r2 < 0.05
    # GCV shrinks pure noise hard: predictions stay near the mean.
    assert np.abs(noise(x) - noise.bias).mean() < 0.2


def test_ridge_errors():
    with pytest.raises(ValueError, match="matching rows"):
        tp.fit_text_map(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="positive"):
        tp.fit_text_map(np.eye(3), np.eye(3), l2=0.0)


def test_ridge_match_spread_restores_the_embeddings_spread():
    rng = np.random.default_rng(2)
    x = _text(300, 10)
    y = _standardise(x) @ rng.normal(size=(10, 4)) * 0.2 + rng.normal(size=(300, 4))
    shrunk = tp.fit_text_map(x, y)
    matched = tp.fit_text_map(x, y, match_spread=True)
    deviation = lambda rows: np.sqrt(np.mean((rows - y.mean(0)) ** 2))
    assert deviation(shrunk(x)) < 0.5 * deviation(y)  # ridge crowds predictions at the mean
    np.testing.assert_allclose(deviation(matched(x)), deviation(y), rtol=1e-4)
    assert matched.spread > 1 and shrunk.spread == 1.0 and matched.l2 == shrunk.l2
