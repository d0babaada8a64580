"""The digit MLP's input standardization and training noise: what the default recipe relies on."""

from __future__ import annotations

import pytest
import torch

from torchlab.engine.checkpoint import load_state_into, make_checkpoint
from torchlab.models import build_model
from torchlab.models.digits import SCALE_FLOOR


def test_standardization_uses_the_training_pixels_and_travels_with_the_weights():
    x = torch.rand(50, 64)
    x[:, 0] = 0.0  # a pixel that is always blank
    model = build_model("digit-mlp", standardize=True).eval()
    model.fit_standardization(x)
    assert torch.allclose(model.input_mean, x.mean(0)) and torch.allclose(model.input_scale, x.std(0) + SCALE_FLOOR)
    plain = build_model("digit-mlp").eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("input_")})
    expected = plain((x - x.mean(0)) / (x.std(0) + SCALE_FLOOR))
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert torch.isfinite(model(x)).all()  # the blank pixel is not divided by zero
    checkpoint = make_checkpoint(
        task="digit-mlp", model_name="digit-mlp", model=model, model_kwargs={"standardize": True}
    )
    again = build_model("digit-mlp", standardize=True).eval()
    load_state_into(again, checkpoint["state_dict"], source="test")
    assert torch.equal(again(x), model(x))


def test_input_noise_acts_in_training_mode_only():
    x = torch.rand(8, 64)
    model = build_model("digit-mlp", input_noise=0.5)
    torch.manual_seed(0)
    assert not torch.equal(model.train()(x), model.train()(x))
    assert torch.equal(model.eval()(x), model.eval()(x))
    with pytest.raises(ValueError, match="input_noise must be >= 0"):
        build_model("digit-mlp", input_noise=-1.0)
    with pytest.raises(ValueError, match="standardize=False"):
        build_model("digit-mlp").fit_standardization(x)


def test_the_standardized_recipe_checkpoint_evaluates_to_the_runs_test_accuracy(tmp_path):
    import torchlab

    result = torchlab.train(
        "digit-mlp", "standardized", out=tmp_path, epochs=3, device="cpu", figures=False, progress=False
    )
    model, meta = torchlab.load(result.best_checkpoint, device="cpu")
    assert meta["model"]["kwargs"] == {"hidden": 32, "standardize": True, "input_noise": 0.3}
    assert float(model.input_scale.min()) >= 0.1 and float(model.input_mean.max()) > 0.3  # fitted, not the defaults
    metrics = torchlab.evaluate(result.best_checkpoint, device="cpu")
    assert metrics["accuracy"] == pytest.approx(result.metrics["test_accuracy"], abs=1e-6) and metrics["accuracy"] > 0.8
