"""KAN layer and adapter: B-spline basis against oracle rows, SciPy and an independent recursion; forward, init."""
import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from vpmnet.kan import KANAdapter, KANLinear, b_spline_basis, make_grid

KNOTS = [-2.2, -1.8, -1.4, -1.0, -0.6, -0.2, 0.2, 0.6, 1.0, 1.4, 1.8, 2.2]   # G=5, k=3 on [-1, 1]

# kan_vpt_focal.md §1.3, oracle basis rows for the defaults.
ORACLE_ROWS = {
    -1.0: [1 / 6, 2 / 3, 1 / 6, 0, 0, 0, 0, 0],
    -0.5: [0, 0.0703125, 0.6119792, 0.3151042, 0.0026042, 0, 0, 0],
    0.0: [0, 0, 0.0208333, 0.4791667, 0.4791667, 0.0208333, 0, 0],
    0.3: [0, 0, 0, 0.0703125, 0.6119792, 0.3151042, 0.0026042, 0],
    1.0: [0, 0, 0, 0, 0, 1 / 6, 2 / 3, 1 / 6],
    1.5: [0, 0, 0, 0, 0, 0, 0.0703125, 0.6119792],
    -2.0: [0.0208333, 0, 0, 0, 0, 0, 0, 0],
    -3.0: [0] * 8,
    2.2: [0] * 8,
    5.0: [0] * 8,
}


def oracle_basis(x, knots, k):
    """B_{j,k}(x) by the textbook recursion on a 1-D knot vector (float64), written independently of vpmnet."""
    x = np.asarray(x, np.float64)[..., None]
    t = np.asarray(knots, np.float64)

    def b(j, p):
        if p == 0:
            return ((t[j] <= x) & (x < t[j + 1])).astype(np.float64)[..., 0]
        return ((x[..., 0] - t[j]) / (t[j + p] - t[j]) * b(j, p - 1)
                + (t[j + p + 1] - x[..., 0]) / (t[j + p + 1] - t[j + 1]) * b(j + 1, p - 1))

    return np.stack([b(j, k) for j in range(len(t) - k - 1)], axis=-1)


def silu(x):
    return x / (1 + np.exp(-x))


def kan_oracle(layer, x):
    """y = silu(x) Wbᵀ + flat(B(x)) flat(Ws ⊙ s)ᵀ in float64, for any leading dims."""
    wb = layer.base_weight.asnumpy().astype(np.float64)
    ws = layer.spline_weight.asnumpy().astype(np.float64) * layer.spline_scaler.asnumpy()[..., None]
    knots = layer.grid.asnumpy()[0].astype(np.float64)
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    bases = oracle_basis(flat, knots, layer.spline_order).reshape(len(flat), -1)
    y = silu(flat) @ wb.T + bases @ ws.reshape(ws.shape[0], -1).T
    return y.reshape(x.shape[:-1] + (wb.shape[0],))


def ms_basis(x, knots, k):
    return b_spline_basis(Tensor(np.asarray(x, np.float32)), Tensor(np.asarray(knots, np.float32)), k).asnumpy()


def test_grid_matches_reference_knots():
    np.testing.assert_allclose(make_grid(5, 3, (-1, 1)), KNOTS, atol=1e-12)
    assert len(make_grid(7, 2, (0, 3))) == 7 + 2 * 2 + 1


@pytest.mark.parametrize("x", sorted(ORACLE_ROWS))
def test_basis_oracle_rows(x):
    got = ms_basis([[x]], KNOTS, 3)[0, 0]
    np.testing.assert_allclose(got, ORACLE_ROWS[x], atol=1e-6)


def test_basis_partition_of_unity_and_support(rng):
    inside = np.concatenate([rng.uniform(-1, 1, 200), [-1.0, 1.0, -0.2, 0.6]])
    np.testing.assert_allclose(ms_basis(inside[:, None], KNOTS, 3).sum(-1), 1.0, atol=1e-6)
    outside = np.array([-2.2001, -2.5, -10.0, 2.2, 2.5, 100.0])
    assert np.all(ms_basis(outside[:, None], KNOTS, 3) == 0)
    # the sum decays on the extended part of the grid (oracle values §1.3)
    np.testing.assert_allclose(ms_basis([[1.2], [1.4], [1.5], [1.8], [2.0]], KNOTS, 3).sum(-1)[:, 0],
                               [0.97917, 0.83333, 0.68229, 0.16667, 0.020833], atol=1e-5)


def test_basis_half_open_at_knots():
    # order 0: each knot belongs to the interval on its right only; the last knot belongs to none
    got = ms_basis(np.array(KNOTS)[:, None], KNOTS, 0)[:, 0]
    expected = np.eye(len(KNOTS), len(KNOTS) - 1)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("grid_size,order", [(5, 3), (3, 2), (8, 1), (4, 0)])
def test_basis_shape_and_recursion_oracle(rng, grid_size, order):
    knots = make_grid(grid_size, order, (-1.5, 0.5))
    x = rng.uniform(-3, 2, (7, 4))
    per_feature = np.tile(knots, (4, 1))                      # the layer's [I, G+2k+1] buffer
    got = ms_basis(x, per_feature, order)
    assert got.shape == (7, 4, grid_size + order)
    np.testing.assert_allclose(got, oracle_basis(x, knots, order), atol=2e-6)


def test_basis_matches_scipy_design_matrix():
    scipy_interpolate = pytest.importorskip("scipy.interpolate")
    x = np.linspace(-1, 1, 101)
    expected = scipy_interpolate.BSpline.design_matrix(x, np.array(KNOTS), 3).toarray()
    np.testing.assert_allclose(ms_basis(x[:, None], KNOTS, 3)[:, 0], expected, atol=1e-6)


def test_basis_numpy_path_is_float64_exact():
    # the layer's init evaluates the same function on NumPy arrays
    x = np.array(sorted(ORACLE_ROWS))
    np.testing.assert_allclose(b_spline_basis(x, np.array(KNOTS), 3), oracle_basis(x, KNOTS, 3), atol=1e-12)


def test_kan_linear_forward_matches_numpy_with_leading_dims(rng):
    ms.set_seed(0)
    layer = KANLinear(6, 4)
    x = rng.uniform(-3, 3, (2, 3, 6))
    x[0, 0] = [2.2, 2.5, -2.3, 7.0, -9.0, 3.0]            # spline path is exactly 0 here
    got = layer(Tensor(x, ms.float32)).asnumpy()
    assert got.shape == (2, 3, 4)
    np.testing.assert_allclose(got, kan_oracle(layer, x.astype(np.float32)), rtol=1e-5, atol=1e-6)
    wb = layer.base_weight.asnumpy()
    np.testing.assert_allclose(got[0, 0], silu(x[0, 0].astype(np.float32)) @ wb.T, rtol=1e-5, atol=1e-6)
    # a single vector and a flat batch go through the same path
    assert layer(Tensor(x[0, 0], ms.float32)).shape == (4,)


@pytest.mark.parametrize("i,o,g,k", [(5, 3, 5, 3), (4, 7, 3, 2)])
def test_kan_linear_parameters(i, o, g, k):
    layer = KANLinear(i, o, grid_size=g, spline_order=k)
    trainable = {p.name: p.shape for p in layer.trainable_params()}
    assert trainable == {"base_weight": (o, i), "spline_weight": (o, i, g + k), "spline_scaler": (o, i)}
    assert sum(math.prod(s) for s in trainable.values()) == o * i * (g + k + 2)
    assert layer.grid.shape == (i, g + 2 * k + 1) and not layer.grid.requires_grad
    np.testing.assert_allclose(layer.grid.asnumpy(), np.tile(make_grid(g, k), (i, 1)), atol=1e-7)


def test_kan_linear_init_bounds_and_noise_fit():
    ms.set_seed(1)
    i, o, g, k, noise = 16, 12, 5, 3, 0.1
    layer = KANLinear(i, o, grid_size=g, spline_order=k, scale_noise=noise)
    bound = 1 / math.sqrt(i)                               # kaiming_uniform(a=sqrt(5)) on fan_in
    for w in (layer.base_weight.asnumpy(), layer.spline_scaler.asnumpy()):
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    coeff = layer.spline_weight.asnumpy().astype(np.float64)               # [O, I, G+k]
    design = oracle_basis(make_grid(g, k)[k:-k], KNOTS, k)                 # interior knots [G+1, G+k]
    at_knots = np.einsum("km,oim->oik", design, coeff)
    # the spline passes through noise drawn from U(-noise/(2G), noise/(2G)) at the interior knots ...
    assert np.abs(at_knots).max() <= noise / (2 * g) + 1e-7
    assert at_knots.std() > noise / (2 * g) / 3
    # ... by the minimum-norm solution: the coefficients lie in the row space of the design matrix
    projected = coeff @ np.linalg.pinv(design) @ design
    np.testing.assert_allclose(projected, coeff, atol=1e-7)


def test_kan_linear_init_reproducible_from_ms_seed():
    def params():
        return [p.asnumpy() for p in KANLinear(5, 4).trainable_params()]

    ms.set_seed(123)
    first, second = params(), params()
    ms.set_seed(123)
    again = params()
    for a, b, c in zip(first, second, again):
        np.testing.assert_array_equal(a, c)
        assert not np.array_equal(a, b)


def test_kan_linear_graph_mode_equals_pynative(graph_mode, rng):
    ms.set_seed(2)
    layer = KANLinear(6, 5, grid_size=4, spline_order=2)
    x = rng.uniform(-2, 2, (3, 2, 6)).astype(np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).asnumpy(), kan_oracle(layer, x), rtol=1e-5, atol=1e-6)


def test_adapter_is_identity_at_init(rng):
    ms.set_seed(4)
    adapter = KANAdapter(16, 8)
    f = rng.standard_normal((2, 3, 16)).astype(np.float32) * 5
    np.testing.assert_array_equal(adapter(Tensor(f)).asnumpy(), f)
    assert adapter.norm.epsilon == 1e-5


class _AdapterLoss(nn.Cell):
    def __init__(self, adapter):
        super().__init__()
        self.adapter = adapter

    def construct(self, f, target):
        return ((self.adapter(f) - target) ** 2).sum()


def test_adapter_gradients_reach_every_parameter_after_one_update(rng):
    ms.set_seed(5)
    adapter = KANAdapter(8, 6)
    f = Tensor(rng.standard_normal((4, 8)).astype(np.float32))
    target = Tensor(rng.standard_normal((4, 8)).astype(np.float32))
    loss = _AdapterLoss(adapter)                     # parameter names gain the prefix "adapter."
    params = loss.trainable_params()
    grad_fn = ms.grad(loss, grad_position=None, weights=params)

    first = {p.name: np.abs(g.asnumpy()).max() for p, g in zip(params, grad_fn(f, target))}
    moving = {"adapter.kan2.base_weight", "adapter.kan2.spline_scaler"}
    assert all(first[n] > 0 for n in moving)
    assert all(first[n] == 0 for n in first if n not in moving)   # everything else sits behind zeros

    for p, g in zip(params, grad_fn(f, target)):
        p.set_data(p - 0.1 * g)
    second = {p.name: np.abs(g.asnumpy()).max() for p, g in zip(params, grad_fn(f, target))}
    assert all(v > 0 for v in second.values()), second
    assert not np.array_equal(adapter(f).asnumpy(), f.asnumpy())
