"""Kolmogorov–Arnold (B-spline) layers in the efficient-KAN layout, and the residual KAN feature adapter.

`KANLinear` computes, for x of shape [..., I],

    y_o = sum_i W^b_{o,i} silu(x_i) + sum_i sum_m c_{o,i,m} s_{o,i} B_m(x_i)

with a uniform knot vector of G + 2k + 1 knots (G = grid_size intervals on `grid_range`, extended by k on each
side) and the half-open Cox–de Boor basis B_m of order k, so the spline path is exactly zero outside the
extended grid (DESIGN §6; reference kan_vpt_focal.md §1). There is no bias and no grid update.

`KANAdapter` is `f + KAN2(KAN1(LayerNorm(f)))`, initialised as an exact identity.
"""
import math

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

__all__ = ["b_spline_basis", "make_grid", "KANLinear", "KANAdapter"]


def make_grid(grid_size, spline_order, grid_range=(-1.0, 1.0)):
    """The uniform knot vector t_j = lo + j·h, j = -k … G+k, as a float64 NumPy row of G + 2k + 1 knots."""
    lo, hi = float(grid_range[0]), float(grid_range[1])
    if not hi > lo:
        raise ValueError(f"grid_range must be increasing, got {tuple(grid_range)}")
    if grid_size < 1 or spline_order < 0:
        raise ValueError(f"need grid_size >= 1 and spline_order >= 0, got {grid_size}, {spline_order}")
    h = (hi - lo) / grid_size
    return lo + h * np.arange(-spline_order, grid_size + spline_order + 1, dtype=np.float64)


def b_spline_basis(x, grid, spline_order):
    """B-spline basis values of every input feature: x [..., I], grid [I, G+2k+1] (or one row) -> [..., I, G+k].

    Iterative Cox–de Boor with half-open order-0 intervals [t_j, t_{j+1}). Written with operators only, so the
    same code runs on MindSpore tensors (PyNative and graph mode: the loop over orders is static) and on NumPy
    arrays (the layer's least-squares initialisation). The knots must be strictly increasing.
    """
    x = x[..., None]
    bases = ((x >= grid[..., :-1]) & (x < grid[..., 1:])).astype(x.dtype)
    for p in range(1, spline_order + 1):
        left = (x - grid[..., : -(p + 1)]) / (grid[..., p:-1] - grid[..., : -(p + 1)])
        right = (grid[..., p + 1 :] - x) / (grid[..., p + 1 :] - grid[..., 1:-p])
        bases = left * bases[..., :-1] + right * bases[..., 1:]
    return bases


def _kaiming_uniform(rng, shape, a):
    """torch's kaiming_uniform_(a) for a 2-D [fan_out, fan_in] weight (fan_in mode, leaky-ReLU gain)."""
    bound = math.sqrt(2.0 / (1.0 + a * a)) * math.sqrt(3.0 / shape[1])
    return rng.uniform(-bound, bound, size=shape)


class KANLinear(nn.Cell):
    """One efficient-KAN layer [..., in_features] -> [..., out_features].

    Parameters: `base_weight` [O, I], `spline_weight` [O, I, G+k], `spline_scaler` [O, I] (O·I·(G+k+2) in all)
    and the non-trainable knot buffer `grid` [I, G+2k+1].

    Initialisation follows efficient-KAN (kan_vpt_focal.md §1.5), computed in NumPy: the layer draws the seed of
    its own generator from NumPy's global generator, which `ms.set_seed` seeds — the way MindSpore's
    initialisers do — so a fixed `ms.set_seed` reproduces it and two layers never share an initialisation.
    """

    def __init__(self, in_features, out_features, grid_size=5, spline_order=3, grid_range=(-1.0, 1.0),
                 scale_noise=0.1, scale_base=1.0, scale_spline=1.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.grid_size = grid_size
        self.spline_order = spline_order
        n_basis = grid_size + spline_order
        knots = make_grid(grid_size, spline_order, grid_range)
        rng = np.random.default_rng(np.random.randint(1, 1 << 63, dtype=np.int64))

        base = _kaiming_uniform(rng, (out_features, in_features), math.sqrt(5) * scale_base)
        scaler = _kaiming_uniform(rng, (out_features, in_features), math.sqrt(5) * scale_spline)
        # Noise at the G+1 interior knots, fitted by the minimum-norm least-squares solution (6 equations,
        # 8 unknowns by default), so each edge's spline passes exactly through its noise at those knots.
        interior = knots[spline_order:-spline_order]
        noise = (rng.random((grid_size + 1, in_features * out_features)) - 0.5) * scale_noise / grid_size
        design = b_spline_basis(interior, knots, spline_order)                      # [G+1, G+k]
        coeff = np.linalg.lstsq(design, noise, rcond=None)[0]                       # [G+k, I*O]
        coeff = coeff.reshape(n_basis, in_features, out_features).transpose(2, 1, 0)

        self.grid = Parameter(Tensor(np.tile(knots, (in_features, 1)), ms.float32), name="grid", requires_grad=False)
        self.base_weight = Parameter(Tensor(base, ms.float32), name="base_weight")
        self.spline_weight = Parameter(Tensor(coeff, ms.float32), name="spline_weight")
        self.spline_scaler = Parameter(Tensor(scaler, ms.float32), name="spline_scaler")

    def construct(self, x):
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        # Parameters follow the activation dtype so the layer also runs under mixed precision.
        base = ops.dense(ops.silu(x), self.base_weight.astype(x.dtype))
        bases = b_spline_basis(x, self.grid.astype(x.dtype), self.spline_order)
        scaled = (self.spline_weight * self.spline_scaler.expand_dims(-1)).astype(x.dtype)
        spline = ops.dense(bases.reshape(x.shape[0], -1), scaled.reshape(self.out_features, -1))
        return (base + spline).reshape(lead + (self.out_features,))

    def extend_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"grid_size={self.grid_size}, spline_order={self.spline_order}")


class KANAdapter(nn.Cell):
    """Residual adapter on a global feature: f + KAN2(KAN1(LayerNorm(f))), dim -> hidden -> dim (DESIGN §6).

    KAN2's `base_weight` and `spline_scaler` start at zero, so the adapter is the identity at initialisation
    and fine-tuning starts from the pretrained alignment; the first update moves those two tensors, after
    which every parameter receives gradient. LayerNorm and the KAN run in fp32; the residual keeps f's dtype.
    """

    def __init__(self, dim, hidden, grid_size=5, spline_order=3, grid_range=(-1.0, 1.0)):
        super().__init__()
        self.norm = nn.LayerNorm((dim,), epsilon=1e-5)
        self.kan1 = KANLinear(dim, hidden, grid_size, spline_order, grid_range)
        self.kan2 = KANLinear(hidden, dim, grid_size, spline_order, grid_range)
        for weight in (self.kan2.base_weight, self.kan2.spline_scaler):
            weight.set_data(ops.zeros_like(weight))

    def construct(self, f):
        delta = self.kan2(self.kan1(self.norm(f.astype(ms.float32))))
        return f + delta.astype(f.dtype)
