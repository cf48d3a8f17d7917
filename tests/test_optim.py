"""Optimiser and schedule: torch-exact Adam/AdamW, IRRA's learning-rate groups and its warm-up + cosine."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from vpmnet.config import TrainConfig
from vpmnet.optim import Adam, lr_at, lr_multipliers


class _Net(nn.Cell):
    def __init__(self, w, b, s):
        super().__init__()
        self.dense = nn.Dense(4, 3)
        self.dense.weight.set_data(Tensor(w))
        self.dense.bias.set_data(Tensor(b))
        self.scale = ms.Parameter(Tensor(s), name="scale")   # 0-d, like CLIP's logit scale

    def construct(self, x):
        return ((self.dense(x) * self.scale) ** 2).mean()


@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_matches_torch(decoupled):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w, b, s = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32), np.float32(2)
    net = _Net(w, b, s)
    names = [p.name for p in net.trainable_params()]
    per_name = {"scale": (1.0, 0.05), "dense.weight": (1.0, 0.1), "dense.bias": (2.0, 0.0)}
    opt = Adam(net.trainable_params(), [per_name[n] for n in names], eps=1e-8, decoupled=decoupled)
    grad_fn = ms.value_and_grad(net, None, opt.parameters)

    tw, tb, ts = (torch.nn.Parameter(torch.tensor(v)) for v in (w, b, s))
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    topt = cls([{"params": [tw], "lr": 0.01, "weight_decay": 0.1}, {"params": [tb], "lr": 0.02, "weight_decay": 0.0},
                {"params": [ts], "lr": 0.01, "weight_decay": 0.05}], eps=1e-8)
    for _ in range(6):
        x = rng.standard_normal((8, 4)).astype(np.float32)
        loss, grads = grad_fn(Tensor(x))
        opt(grads, Tensor(0.01, ms.float32))
        topt.zero_grad()
        (((torch.tensor(x) @ tw.T + tb) * ts) ** 2).mean().backward()
        topt.step()
    np.testing.assert_allclose(net.dense.weight.asnumpy(), tw.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(net.dense.bias.asnumpy(), tb.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(net.scale.asnumpy(), ts.detach().numpy(), atol=1e-6)
    assert int(opt.step.asnumpy()) == 6


def test_irra_learning_rate_table():
    """Epoch-start learning rates of IRRA's schedule (reference notes §1d) at one step per epoch."""
    cfg = TrainConfig(epochs=60, lr=1e-5, warmup_epochs=5, warmup_factor=0.1)
    expected = {1: 1.0e-6, 2: 2.8e-6, 3: 4.6e-6, 4: 6.4e-6, 5: 8.2e-6, 6: 1.0e-5, 11: 9.80e-6, 21: 8.27e-6,
                31: 5.71e-6, 41: 2.92e-6, 51: 7.9e-7}
    for epoch, lr in expected.items():
        assert lr_at(epoch - 1, 1, cfg) == pytest.approx(lr, rel=6e-3), epoch
    # Per step, warm-up is linear inside an epoch and the paper's recipe starts at 1e-6.
    paper = TrainConfig(epochs=90, lr=2e-5, warmup_epochs=10, warmup_factor=0.05)
    assert lr_at(0, 100, paper) == pytest.approx(1e-6)
    assert lr_at(500, 100, paper) == pytest.approx((1e-6 + 2e-5) / 2)
    assert lr_at(1000, 100, paper) == pytest.approx(2e-5)
    assert lr_at(9000, 100, paper) == pytest.approx(0.0, abs=1e-12)


def test_irra_parameter_groups():
    cfg = TrainConfig(lr_factor=5.0, bias_lr_factor=2.0, weight_decay=4e-5, weight_decay_bias=0.0)
    names = ["clip.visual.conv1.weight", "clip.visual.ln_pre.beta", "irr.cross_attn.in_proj_weight",
             "irr.cross_attn.in_proj_bias", "irr.ln_pre_t.gamma", "irr.mlm_head.fc.weight", "irr.mlm_head.fc.bias",
             "classifier.weight", "classifier.bias", "clip.text.transformer.resblocks.3.prompt.embedding"]
    assert lr_multipliers(names, cfg) == [
        (1.0, 4e-5), (2.0, 0.0), (5.0, 4e-5), (2.0, 0.0), (1.0, 4e-5), (5.0, 4e-5), (5.0, 0.0),
        (5.0, 4e-5), (5.0, 0.0), (1.0, 4e-5)]
