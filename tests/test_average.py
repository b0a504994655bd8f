"""``trainer average``: the mean of two runs' weights (how the shipped generalist's stage 10 was made)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from scrapy_captcha.weights import Weights, load_weights, save_weights
from tests.test_frames_per_column import SMALL, small_weights
from trainer import cli
from trainer.surgery import average_weights


def test_the_mean_is_taken_tensor_by_tensor_at_the_second_files_share():
    first, second = small_weights(seed=1), small_weights(seed=2)
    for share in (0.0, 0.25, 0.5, 1.0):
        mean = average_weights(first, second, share)
        assert mean.config == first.config and mean.state_dict.keys() == first.state_dict.keys()
        for name, tensor in mean.state_dict.items():
            if tensor.is_floating_point():
                expected = (1 - share) * first.state_dict[name] + share * second.state_dict[name]
                assert torch.allclose(tensor, expected, atol=1e-6), name
            else:  # counters stay the first file's
                assert torch.equal(tensor, first.state_dict[name]), name
    assert any(not t.is_floating_point() for t in first.state_dict.values()), "the model has counters to keep"
    assert mean.summary["averaged"]["second_share"] == 1.0
    mean.build()  # loads into the model


def test_a_file_averaged_with_itself_reads_as_before():
    weights = small_weights(seed=3)
    image = torch.rand(1, 1, 32, 96)
    with torch.no_grad():
        before, after = weights.build()(image), average_weights(weights, weights).build()(image)
    assert torch.allclose(before, after, atol=1e-6)


@pytest.mark.parametrize("other, words", [
    (lambda: Weights(replace(SMALL, hidden=24), small_weights().state_dict), "settings differ in hidden"),
    (lambda: Weights(SMALL, {k: v for k, v in list(small_weights().state_dict.items())[1:]}), "their tensors differ"),
    (lambda: Weights(SMALL, {k: v[..., :1] if k.endswith("weight") and v.dim() > 1 else v
                             for k, v in small_weights().state_dict.items()}), "is ("),
])
def test_two_files_of_different_models_are_refused(other, words):
    with pytest.raises(ValueError, match=f"not one model.*{words.replace('(', '[(]')}"):
        average_weights(small_weights(), other())


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="share must be within 0..1, not 1.5"):
        average_weights(small_weights(), small_weights(), 1.5)


def test_the_command_writes_a_weights_file_the_middleware_loads(tmp_path, capsys):
    first, second = small_weights(seed=4), small_weights(seed=5)
    for name, weights in (("a.pt", first), ("b.pt", second)):
        save_weights(tmp_path / name, weights.build(), weights.config)
    out = tmp_path / "mean" / "c.pt"
    assert cli.main(["average", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--share", "0.3", "--out", str(out)]) == 0
    assert "0.7 x" in capsys.readouterr().out
    mean = load_weights(out)
    name = next(k for k, v in first.state_dict.items() if v.is_floating_point() and v.dim() > 1)
    assert torch.allclose(mean.state_dict[name], 0.7 * first.state_dict[name] + 0.3 * second.state_dict[name], atol=1e-6)
    other = Weights(replace(SMALL, alphabet="0123456789abd"), first.state_dict)
    save_weights(tmp_path / "d.pt", other.build(), other.config)
    assert cli.main(["average", str(tmp_path / "a.pt"), str(tmp_path / "d.pt"), "--out", str(tmp_path / "e.pt")]) == 2
    assert "settings differ in alphabet" in capsys.readouterr().err and not (tmp_path / "e.pt").exists()
