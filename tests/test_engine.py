"""The training engine, tested without the scikit-learn layer."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skorch.callbacks import Callback
from torch import nn

from sk_reweight._data import TensorBatches, TensorDataset
from sk_reweight._engine import ReweightingNet, ScheduleComplete, weighted_mean_loss
from sk_reweight._policies import MinibatchPolicy, TrainingStep, WeightStatistics
from sk_reweight._rgd import RGDPolicy, rgd_weights
from sk_reweight._schedules import cosine_schedule


def make_dataset(n_samples=50, n_features=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n_samples, n_features, generator=generator)
    y = (X[:, 0] > 0).long()
    sample_weight = torch.rand(n_samples, generator=generator) + 0.5
    return TensorDataset(X, y, sample_weight)


def make_net(policy, dataset, **kwargs):
    torch.manual_seed(0)
    policy.reset(len(dataset), torch.Generator().manual_seed(0), torch.device("cpu"))
    kwargs = {
        "optimizer": torch.optim.SGD,
        "lr": 0.1,
        "batch_size": 16,
        "max_epochs": 1,
        "train_split": None,
        "verbose": 0,
        **kwargs,
    }
    return ReweightingNet(nn.Linear(dataset.X.shape[1], 2), policy=policy, **kwargs)


@given(
    losses=arrays(np.float64, 12, elements=st.floats(0, 10)),
    sample_weight=arrays(np.float64, 12, elements=st.floats(0, 3, allow_subnormal=False)),
    example_weight=arrays(np.float64, 12, elements=st.floats(0.5, 3)),
)
def test_weighted_mean_loss_matches_numpy(losses, sample_weight, example_weight):
    result = weighted_mean_loss(
        torch.tensor(losses), torch.tensor(sample_weight), torch.tensor(example_weight)
    ).item()
    if sample_weight.sum() == 0:
        assert result == 0
    else:
        expected = np.sum(sample_weight * example_weight * losses) / sample_weight.sum()
        assert result == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("batch_size", [1, 7, 16, 50, 64])
def test_policy_batches_visit_every_example_once_per_epoch(batch_size):
    dataset = make_dataset()
    policy = MinibatchPolicy()
    policy.reset(len(dataset), torch.Generator().manual_seed(3), torch.device("cpu"))
    batches = TensorBatches(
        dataset, batch_size, "cpu", epoch_order=lambda: policy.epoch_batches(batch_size)
    )
    for epoch in range(1, 3):
        seen = []
        for batch in batches:
            assert len(batch.X) <= batch_size
            torch.testing.assert_close(batch.X, dataset.X[batch.targets.indices])
            torch.testing.assert_close(
                batch.targets.sample_weight, dataset.sample_weight[batch.targets.indices]
            )
            seen.append(batch.targets.indices)
        assert sorted(torch.cat(seen).tolist()) == list(range(len(dataset)))
        assert len(seen) == len(batches)
        assert policy.progress == epoch


def test_policy_order_is_reproducible_and_changes_between_epochs():
    def epoch_orders(seed):
        policy = MinibatchPolicy()
        policy.reset(30, torch.Generator().manual_seed(seed), torch.device("cpu"))
        return [torch.cat(list(policy.epoch_batches(8))) for _ in range(2)]

    first, second = epoch_orders(1), epoch_orders(1)
    torch.testing.assert_close(first, second)
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first[0], epoch_orders(2)[0])


def test_evaluation_batches_are_consecutive_slices():
    dataset = make_dataset(n_samples=23)
    batches = list(TensorBatches(TensorDataset(dataset.X), 10, "cpu"))
    assert [len(X) for X, target in batches] == [10, 10, 3]
    assert all(target is None for _, target in batches)
    torch.testing.assert_close(torch.cat([X for X, _ in batches]), dataset.X)


def manual_gradient(net, X, y, sample_weight, example_weight):
    """The gradient of sum(u r l) / sum(u) computed directly with autograd."""
    module = net.module_
    module.zero_grad()
    losses = nn.functional.cross_entropy(module(X), y, reduction="none")
    weights = sample_weight if example_weight is None else sample_weight * example_weight
    ((weights * losses).sum() / sample_weight.sum()).backward()
    return [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize(
    "policy", [MinibatchPolicy(), RGDPolicy(tau=1.0), RGDPolicy(tau=0.5, normalize=True)]
)
def test_train_step_gradient_is_the_weighted_objective(policy):
    dataset = make_dataset()
    net = make_net(policy, dataset).initialize()
    policy.epochs_started = 1
    batch = dataset[torch.arange(0, 16)]
    X, (y, sample_weight, _) = batch
    with torch.no_grad():
        losses = nn.functional.cross_entropy(net.module_(X), y, reduction="none")
    example_weight = None
    if isinstance(policy, RGDPolicy):
        example_weight = rgd_weights(
            losses, policy.tau, normalize=policy.normalize, sample_weight=sample_weight
        )
    manual_grads = manual_gradient(net, X, y, sample_weight, example_weight)
    before = [p.detach().clone() for p in net.module_.parameters()]
    # The step leaves the gradients it stepped on: zeroed first, then the weighted objective's.
    step = net.train_step(batch)
    for engine, manual in zip(net.module_.parameters(), manual_grads, strict=True):
        torch.testing.assert_close(engine.grad, manual)
    after = list(net.module_.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(after, before, strict=True))  # it stepped
    # The reported loss is the plain sample-weighted cross-entropy, whatever the policy.
    expected_loss = (sample_weight * losses).sum() / sample_weight.sum()
    torch.testing.assert_close(step["loss"], expected_loss)


def test_rgd_warmup_epochs_train_with_unit_weights():
    policy = RGDPolicy(tau=1.0, warmup_epochs=2)
    policy.reset(10, torch.Generator(), torch.device("cpu"))
    losses, sample_weight = torch.tensor([0.1, 3.0]), torch.ones(2)
    for epoch in (1, 2, 3):
        list(policy.epoch_batches(10))
        step = TrainingStep(
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            torch.arange(2),
            sample_weight,
            torch.zeros(2, 2),
            losses,
        )
        weights = policy.loss_weights(step)
        assert (weights is None) == (epoch <= 2)
    torch.testing.assert_close(weights, rgd_weights(losses, 1.0))


def test_recorded_train_loss_is_the_epoch_mean_loss():
    dataset = make_dataset(n_samples=48)
    dataset.sample_weight = torch.ones(48)
    net = make_net(MinibatchPolicy(), dataset, lr=1e-12, max_epochs=2).fit(dataset)
    with torch.no_grad():
        losses = nn.functional.cross_entropy(net.module_(dataset.X), dataset.y, reduction="none")
    assert net.history[-1, "train_loss"] == pytest.approx(losses.mean().item(), rel=1e-5)
    assert net.history[-1, "train_batch_count"] == 3


def test_learning_rate_follows_schedule_per_step():
    dataset = make_dataset(n_samples=40)
    lrs = []

    class RecordLR(MinibatchPolicy):
        def epoch_batches(self, batch_size):
            for indices in super().epoch_batches(batch_size):
                yield indices
                lrs.append(net.optimizer_.param_groups[0]["lr"])

    net = make_net(
        RecordLR(),
        dataset,
        batch_size=10,
        max_epochs=3,
        lr_schedule=partial(cosine_schedule, total_epochs=3),
    )
    net.fit(dataset)
    expected = [0.1 * cosine_schedule(step / 4, 3) for step in range(12)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    np.testing.assert_allclose(net.history[:, "lr"], [expected[3], expected[7], expected[11]])


def test_weight_statistics_summarise_and_reset():
    statistics = WeightStatistics()
    assert statistics.summary() == {"weight_min": 1.0, "weight_mean": 1.0, "weight_max": 1.0}
    statistics.update(torch.tensor([1.0, 2.0]))
    statistics.update(torch.tensor([4.0]))
    assert statistics.summary("w") == {"w_min": 1.0, "w_mean": pytest.approx(7 / 3), "w_max": 4.0}
    assert statistics.summary()["weight_mean"] == 1.0


class ImportancePolicy(MinibatchPolicy):
    """Fixed importance weights, as a sampling policy would report them."""

    def __init__(self, weights):
        self.weights = weights

    def sampling_weights(self):
        return self.weights

    def loss_weights(self, step):
        return 2 * self.weights


def test_reported_loss_is_importance_weighted_without_the_loss_multipliers():
    dataset = make_dataset()
    weights = torch.linspace(0.5, 2.0, 16)
    net = make_net(ImportancePolicy(weights), dataset).initialize()
    batch = dataset[torch.arange(16)]
    X, (y, sample_weight, _) = batch
    with torch.no_grad():
        losses = nn.functional.cross_entropy(net.module_(X), y, reduction="none")
    step = net.train_step(batch)
    expected = (sample_weight * weights * losses).sum() / sample_weight.sum()
    torch.testing.assert_close(step["loss"], expected)


class TwiceAsFast(MinibatchPolicy):
    """Every drawn example counts twice: progress runs at two epochs per epoch."""

    def _advance(self, n_drawn):
        super()._advance(2 * n_drawn)


def test_the_end_of_the_schedule_is_not_an_interrupt():
    assert not issubclass(ScheduleComplete, KeyboardInterrupt)
    dataset = make_dataset(n_samples=40)
    net = make_net(TwiceAsFast(), dataset, batch_size=10, max_epochs=6).fit(dataset)
    # skorch's loop would run 6 epochs; the policy's progress reaches 6 after 3.
    assert len(net.history) == 3
    assert net.progress == 6
    assert net.history[-1, "stop_reason"] == "max_epochs"


class RecordsItsEnd(MinibatchPolicy):
    """Counts the calls of end_training."""

    ended = 0

    def end_training(self):
        type(self).ended += 1
        super().end_training()


class FailsAfterTwoSteps(Callback):
    def __init__(self):
        self.steps = 0

    def on_batch_end(self, net, **kwargs):
        self.steps += 1
        if self.steps == 2:
            raise RuntimeError("a failing callback")


def test_an_error_during_training_still_ends_the_policy():
    dataset = make_dataset(n_samples=40)
    policy = RecordsItsEnd()
    net = make_net(policy, dataset, batch_size=10, max_epochs=2, callbacks=[FailsAfterTwoSteps()])
    with pytest.raises(RuntimeError, match="a failing callback"):
        net.fit(dataset)
    assert RecordsItsEnd.ended == 1
    assert policy.generator is None  # released by end_training
