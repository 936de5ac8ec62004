"""RepVGG structural re-parameterisation: the fused model computes what the branches did."""

import torch
from torch import nn

from cimtest.zoo import get_entry, reparameterise
from cimtest.zoo.repvgg import RepVGG, RepVGGBlock


def _randomise_bn(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.randn(n, generator=gen) * 0.1
            m.running_mean = torch.randn(n, generator=gen) * 0.1
            m.running_var = torch.rand(n, generator=gen) + 0.5


def test_fused_output_equals_unfused_in_eval_mode():
    model = RepVGG(3, 10, depths=(1, 2, 2), widths=(8, 8, 16)).eval()
    _randomise_bn(model)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        fused = reparameterise(model)
        got = fused(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert any(isinstance(m, RepVGGBlock) and m.fused is None for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5 and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)


def test_zoo_repvgg_is_the_fused_form_of_its_training_form():
    entry = get_entry("repvgg-a0-8")
    train_form = entry.build(deploy=False)
    _randomise_bn(train_form)
    x = torch.randn(2, *entry.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(
            entry.deploy(train_form)(x), train_form(x), atol=1e-5, rtol=1e-5
        )
    deployed = entry.build()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    assert deployed.state_dict().keys() == entry.deploy(train_form).state_dict().keys()


def test_fuse_in_place_is_idempotent():
    model = RepVGG(1, 3, depths=(1, 1), widths=(4, 4)).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        expected = model(x)
        model.fuse().fuse()
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
