"""Fine-tuning a U-Net from a starting model (what `imaging adapt` does): what it keeps from the start."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from imaging.preprocess import Preprocessing
from imaging.train import TrainingConfig, TrainingExample, _train_mode, train_model
from synthetic import phantom as P

NET = {"channels": [4, 8], "strides": [2], "num_res_units": 1}
TINY = TrainingConfig(epochs=2, steps_per_epoch=4, batch_size=4, patch=32, seed=3, net=NET)


@pytest.fixture(scope="module")
def examples() -> list[TrainingExample]:
    out = []
    for i in range(3):
        spec = P.SeriesSpec(hematomas=(P.hematoma(14, "right", shape_seed=i),),
                            extra_axial=P.ExtraAxial("left", 12.0))
        r = P.render_series(spec, P.Grid.centered(48, 230, 5), np.random.default_rng(i))
        out.append(TrainingExample(f"1.4.{i}", f"r{i}", r.hu, r.labels))
    return out


@pytest.fixture(scope="module")
def start(examples):  # noqa: ANN001, ANN201
    return train_model(examples, TINY, Preprocessing(size=32))


def _batchnorm_buffers(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if "running_" in k}


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_batchnorm_keeps_the_starting_models_statistics(start, freeze: bool) -> None:  # noqa: ANN001
    net = copy.deepcopy(start.net)
    _train_mode(net, freeze)
    net(torch.rand(4, 1, 32, 32) * 3 + 1)  # a batch far from anything the start saw
    before, after = _batchnorm_buffers(start.net), _batchnorm_buffers(net)
    assert before, "the network has no BatchNorm: the test is wrong"
    same = all(torch.equal(before[k], after[k]) for k in before)
    assert same == freeze


def test_fine_tuning_returns_the_starting_weights_when_no_epoch_validates_better(examples, start) -> None:  # noqa: ANN001
    ruin = dataclasses.replace(TINY, epochs=1, steps_per_epoch=3, lr=50.0)  # a step this large wrecks any net
    tuned = train_model(examples, ruin, Preprocessing(size=32), initial=start)
    history = tuned.metadata["metrics"]["history"]
    assert [h["epoch"] for h in history] == [0, 1]
    assert history[0]["val_dice"] == start.metadata["metrics"]["val_dice"]  # epoch 0 scored the start itself
    assert tuned.metadata["metrics"]["best_epoch"] == 0
    ref = start.net.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in tuned.net.state_dict().items())
