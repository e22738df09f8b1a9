"""Training through int8 storage: the passes see the stored weights, the float ones learn."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ufvc.models.checkpoint import dequantize_int8, quantize_int8, read_ufvm
from ufvc.models.registry import load_model_file
from ufvc.train.config import config_from_table
from ufvc.train.rounding import StorageRounding
from ufvc.train.runlog import read_log
from ufvc.train.trainer import run_training


def test_the_passes_see_stored_weights_and_the_float_weights_get_their_gradients():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    x = torch.randn(2, 3, 9, 9)
    rounding = StorageRounding(model)
    assert len(rounding.params) == 2  # the convolution weights, not the biases
    with rounding.applied():
        for name, param in model.named_parameters():
            expected = (dequantize_int8(*quantize_int8(before[name])) if name.endswith("weight")
                        else before[name])
            assert torch.equal(param, expected), name
        model(x).square().mean().backward()
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]), name
    # The gradient is the one at the stored weights (straight-through).
    stored = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1))
    with torch.no_grad():
        for name, param in stored.named_parameters():
            param.copy_(dequantize_int8(*quantize_int8(before[name]))
                        if name.endswith("weight") else before[name])
    stored(x).square().mean().backward()
    for (name, param), reference in zip(model.named_parameters(), stored.parameters(),
                                        strict=True):
        assert torch.allclose(param.grad, reference.grad, rtol=1e-5, atol=1e-7), name


def test_an_int8_run_learns_and_exports_int8_weights(run_table, tmp_path: Path, one_thread):
    table = run_table(intra_steps=20, video_steps=4)
    table["weight_storage"] = "int8"
    result = run_training(config_from_table(table), out_dir=tmp_path, config_table=table)
    assert result.finished
    losses = [float(row["loss"]) for row in read_log(result.log_path)
              if row["split"] == "val" and row["stage"] == "intra"]
    assert losses[-1] < 0.8 * losses[0]
    assert "int8" in read_ufvm(result.export).storage
    exported = load_model_file(result.export)
    for name, param in exported.named_parameters():
        if name.endswith(".weight") and param.dim() == 4:
            assert torch.equal(param, dequantize_int8(*quantize_int8(param))), name
