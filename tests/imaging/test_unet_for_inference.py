"""The U-Net rewritten for CPU inference computes what the network computes, and leaves the network as it was."""

from __future__ import annotations

import pytest
import torch
from monai.networks.blocks import ResidualUnit
from torch import nn

from imaging.model import build_unet
from imaging.preprocess import upsampled_argmax
from imaging.unet_for_inference import (
    LeakyReluInPlace,
    ResidualAddedInPlace,
    folded_transposed_batch_norm,
    for_inference,
)


def _trained_looking_unet(seed: int) -> nn.Module:
    """The student's architecture with BatchNorm statistics and PReLU slopes far from their initial values."""
    torch.manual_seed(seed)
    net = build_unet(3, 5, {"channels": [8, 16, 32, 64, 128], "strides": [2, 2, 2, 2], "num_res_units": 1})
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1.0, 1.0)
                m.running_var.uniform_(0.2, 3.0)
                m.weight.uniform_(-1.5, 1.5)  # negative scales too
                m.bias.uniform_(-0.5, 0.5)
            elif isinstance(m, nn.PReLU):
                m.weight.uniform_(0.05, 0.4)
    return net.eval()


def test_the_rewritten_copy_gives_the_networks_outputs_and_labels() -> None:
    net = _trained_looking_unet(0)
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        expected = net(x)
        got = for_inference(net)(x.clone())
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert float((got.argmax(1) == expected.argmax(1)).float().mean()) > 0.999


def test_the_rewrite_folds_every_transposed_batch_norm_and_replaces_prelus_and_residual_units() -> None:
    net = _trained_looking_unet(1)
    rewritten = for_inference(net)
    transposed = [m for m in net.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert transposed  # the architecture has up-sampling levels with BatchNorm after them
    assert not any(isinstance(m, nn.PReLU) for m in rewritten.modules())
    assert not any(isinstance(m, ResidualUnit) for m in rewritten.modules())
    assert any(isinstance(m, ResidualAddedInPlace) for m in rewritten.modules())
    assert any(isinstance(m, LeakyReluInPlace) for m in rewritten.modules())
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in rewritten.modules()) == n_bn - len(transposed)


def test_the_network_itself_is_left_unchanged() -> None:
    net = _trained_looking_unet(2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for_inference(net)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.PReLU) for m in net.modules())


@pytest.mark.parametrize("bias", [True, False])
def test_a_batch_norm_folded_into_a_transposed_convolution_gives_the_same_output(bias: bool) -> None:
    torch.manual_seed(3)
    conv = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, bias=bias)
    bn = nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.1, 2)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, 9, 9)
    with torch.no_grad():
        expected = bn(conv(x))
        folded_transposed_batch_norm(conv, bn)
        assert torch.allclose(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_a_prelu_with_a_slope_per_channel_is_kept() -> None:
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.PReLU(3))
    rewritten = for_inference(net)
    assert isinstance(rewritten[1], nn.PReLU)


def test_more_classes_than_seven_bits_hold_are_refused_by_the_label_resize() -> None:
    with pytest.raises(ValueError, match="classes"):
        upsampled_argmax(torch.randn(1, 129, 8, 8), 12)
