"""InfoBatchClassifier: soft pruning, expectation rescaling, annealing, a schedule in epochs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.utils.class_weight import compute_sample_weight
from skorch.callbacks import Callback

from sk_reweight import ERMClassifier, InfoBatchClassifier, TrainingCheckpoint
from sk_reweight._data import TensorDataset
from sk_reweight._infobatch import InfoBatchPolicy, below_mean, prunes_in_epoch, pruning_weights
from sk_reweight._policies import TrainingStep
from sk_reweight._schedules import cosine_schedule
from sk_reweight.harness import main
from sk_reweight.harness._methods import Budget, make_model

from . import fake_datasets
from .test_checkpoint import FailsAtEpoch, only_checkpoint, saved_epochs

FAST = {
    "hidden_layer_sizes": (16,), "batch_size": 64, "lr": 3e-3, "max_epochs": 8,
    "n_iter_no_change": None, "anneal": 0.25, "random_state": 0, "device": "cpu",
}  # fmt: skip


class StepRecorder(Callback):
    """Records every training step: its epoch, the examples it drew and its learning rate."""

    def initialize(self):
        self.steps_ = []
        return self

    def on_batch_end(self, net, training=False, indices=None, **kwargs):
        if training:
            lr = net.optimizer_.param_groups[0]["lr"]
            self.steps_.append((len(net.history), indices.tolist(), lr))

    def epochs(self) -> dict[int, list[list[int]]]:
        """The minibatches of each (1-based) epoch."""
        batches: dict[int, list[list[int]]] = {}
        for epoch, indices, _ in self.steps_:
            batches.setdefault(epoch, []).append(indices)
        return batches


def recorded_fit(data, **params):
    recorder = StepRecorder()
    model = InfoBatchClassifier(**{**FAST, **params}, callbacks=[("steps", recorder)])
    model.fit(*data)
    return model, dict(model.net_.callbacks_)["steps"]


@pytest.fixture(scope="module")
def cosine_fit(breast_cancer):
    return recorded_fit(breast_cancer, lr_schedule="cosine")


# ------------------------------------------------------------------ the math


def test_below_mean_is_strictly_below_the_sample_weighted_mean_score():
    scores = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert below_mean(scores, torch.ones(4)).tolist() == [True, True, False, False]
    # The threshold is the weighted objective's mean: 3 here, so 2 is below it.
    assert below_mean(scores, torch.tensor([0.0, 0.0, 0.0, 1.0])).tolist() == [1, 1, 1, 0]
    assert below_mean(scores, torch.zeros(4)).tolist() == [True, True, False, False]
    assert not below_mean(torch.full((5,), 0.7), torch.ones(5)).any()  # all equal: none


def test_pruning_weights_prune_below_mean_draws_under_the_ratio_and_rescale_the_rest():
    below = torch.tensor([True, True, True, False, False])
    uniform = torch.tensor([0.1, 0.5, 0.9, 0.1, 0.9])
    weights = pruning_weights(below, 0.5, uniform)
    assert weights.tolist() == [0.0, 2.0, 2.0, 1.0, 1.0]
    assert pruning_weights(below, 0.0, uniform).tolist() == [1.0] * 5


def test_pruning_epochs_skip_the_first_and_the_annealed_last_ones():
    def pruning(max_epochs, anneal):
        return [e for e in range(1, max_epochs + 1) if prunes_in_epoch(e, max_epochs, anneal)]

    assert pruning(20, 0.125) == list(range(2, 19))  # epochs 19 and 20 use all the data
    assert pruning(8, 0.25) == list(range(2, 7))
    assert pruning(8, 1.0) == []
    assert pruning(8, 0.0) == list(range(2, 9))
    assert prunes_in_epoch(1000, math.inf, 0.125)  # no known end: no annealing


@pytest.mark.parametrize("prune_ratio", [0.5, 0.8])
def test_below_mean_examples_are_pruned_at_the_ratio_and_weigh_one_in_expectation(prune_ratio):
    n, epochs, batch_size = 1000, 100, 100
    scores = torch.arange(n, dtype=torch.float32)  # 500 examples below the mean, 499.5
    below = scores < scores.mean()
    policy = InfoBatchPolicy(prune_ratio, anneal=0.0)
    policy.reset(n, torch.Generator().manual_seed(0), torch.device("cpu"))
    policy.begin_training(None, TensorDataset(torch.zeros(n, 1), torch.zeros(n), torch.ones(n)))
    weight_sum, kept_count = torch.zeros(n), torch.zeros(n)
    for epoch in range(1, epochs + 2):
        drawn = []
        for indices in policy.epoch_batches(batch_size):
            unit = torch.ones(len(indices))
            step = TrainingStep(None, None, indices, unit, None, scores[indices])
            weights = policy.loss_weights(step)  # the losses keep every score as it is
            if epoch == 1:
                assert weights is None  # no scores yet: all the data, unweighted
            else:
                weight_sum[indices] += weights
                kept_count[indices] += 1
            drawn.append(indices)
        drawn = torch.cat(drawn)
        assert len(drawn.unique()) == len(drawn)  # without replacement
        statistics = policy.epoch_statistics()
        assert statistics["kept_fraction"] == len(drawn) / n
        assert policy.progress == epoch
    # Above the mean: kept in every epoch, weight 1.
    assert (kept_count[~below] == epochs).all()
    assert (weight_sum[~below] == epochs).all()
    # Below the mean: pruned with probability r, a binomial count over m x epochs draws.
    trials = below.sum().item() * epochs
    pruned_fraction = 1 - kept_count[below].sum().item() / trials
    assert abs(pruned_fraction - prune_ratio) < 4 * math.sqrt(
        prune_ratio * (1 - prune_ratio) / trials
    )
    # Each kept one weighs 1 / (1 - r): the mean weight is 1 within 4 standard errors.
    torch.testing.assert_close(weight_sum[below] / kept_count[below], torch.full_like(
        weight_sum[below], 1 / (1 - prune_ratio)
    ))  # fmt: skip
    mean_weight = weight_sum[below].sum().item() / trials
    assert abs(mean_weight - 1) < 4 * math.sqrt(prune_ratio / ((1 - prune_ratio) * trials))


# ------------------------------------------------------------ the classifier


def test_annealed_and_first_epochs_use_every_example_once_and_the_others_prune(
    cosine_fit, breast_cancer
):
    model, recorder = cosine_fit
    n = len(breast_cancer[1])
    history = model.history_
    for epoch, batches in recorder.epochs().items():
        drawn = sorted(index for batch in batches for index in batch)
        assert len(set(drawn)) == len(drawn)
        assert history[epoch - 1, "kept_fraction"] == len(drawn) / n
        assert history[epoch - 1, "train_batch_count"] == len(batches)
        if epoch in (1, 7, 8):  # first, then anneal=0.25 of 8 epochs
            assert drawn == list(range(n))
            assert history[epoch - 1, "below_mean_fraction"] == 0
        else:
            assert len(drawn) < n
            assert 0 < history[epoch - 1, "below_mean_fraction"] < 1


def test_the_schedule_runs_over_max_epochs_epochs_with_fewer_steps(cosine_fit, breast_cancer):
    model, recorder = cosine_fit
    n, E = len(breast_cancer[1]), FAST["max_epochs"]
    assert model.n_iter_ == E
    assert len(recorder.steps_) < E * math.ceil(n / FAST["batch_size"])
    # Before each step, progress is the epochs done plus the epoch's drawn fraction.
    for epoch, batches in recorder.epochs().items():
        size = sum(len(batch) for batch in batches)
        drawn = np.cumsum([0] + [len(batch) for batch in batches[:-1]])
        lrs = [lr for e, _, lr in recorder.steps_ if e == epoch]
        expected = [FAST["lr"] * cosine_schedule(epoch - 1 + d / size, E) for d in drawn]
        np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert recorder.steps_[-1][2] < 0.01 * FAST["lr"]  # the schedule ended with the fit


def test_a_seed_reproduces_the_fit_and_another_seed_prunes_otherwise(cosine_fit, breast_cancer):
    model, _ = cosine_fit
    X = breast_cancer[0]
    again, _ = recorded_fit(breast_cancer, lr_schedule="cosine")
    assert again.history_[:, "kept_fraction"] == model.history_[:, "kept_fraction"]
    assert again.loss_curve_ == model.loss_curve_
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    other, _ = recorded_fit(breast_cancer, lr_schedule="cosine", random_state=1)
    assert other.history_[:, "kept_fraction"] != model.history_[:, "kept_fraction"]


def test_anneal_one_never_prunes_and_is_exactly_erm(breast_cancer):
    X, y = breast_cancer
    params = {**FAST, "max_epochs": 3}
    infobatch = InfoBatchClassifier(**{**params, "anneal": 1.0}).fit(X, y)
    params.pop("anneal")
    erm = ERMClassifier(**params).fit(X, y)
    assert infobatch.history_[:, "kept_fraction"] == [1.0] * 3
    np.testing.assert_array_equal(infobatch.predict_proba(X), erm.predict_proba(X))


def test_class_weight_composes_with_pruning_as_the_corresponding_sample_weight(breast_cancer):
    X, y = breast_cancer
    params = {**FAST, "max_epochs": 4}
    sample_weight = np.linspace(0.5, 1.5, len(y))
    class_weight = {0: 3.0, 1: 0.5}
    by_class = InfoBatchClassifier(**params, class_weight=class_weight).fit(
        X, y, sample_weight=sample_weight
    )
    by_sample = InfoBatchClassifier(**params).fit(
        X, y, sample_weight=sample_weight * compute_sample_weight(class_weight, y)
    )
    np.testing.assert_allclose(by_class.predict_proba(X), by_sample.predict_proba(X), rtol=1e-6)
    # The weights decide what is below the mean, not only how the kept losses count.
    unweighted = InfoBatchClassifier(**params).fit(X, y)
    assert by_class.history_[:, "kept_fraction"] != unweighted.history_[:, "kept_fraction"]


def test_a_crashed_fit_resumes_exactly_with_its_scores(breast_cancer, tmp_path):
    X, y = breast_cancer
    params = {**FAST, "max_epochs": 6, "anneal": 0.0, "lr_schedule": "cosine", "dropout": 0.1}
    reference = InfoBatchClassifier(**params).fit(X, y)
    checkpoint = TrainingCheckpoint(tmp_path, every=2)
    with pytest.raises(RuntimeError, match="crash"):
        InfoBatchClassifier(**params, callbacks=[checkpoint, FailsAtEpoch(5)]).fit(X, y)
    assert saved_epochs(only_checkpoint(tmp_path)) == 4
    resumed = InfoBatchClassifier(**params, callbacks=[checkpoint]).fit(X, y)
    assert resumed.n_iter_ == 6
    assert resumed.history_[:, "kept_fraction"] == reference.history_[:, "kept_fraction"]
    assert resumed.loss_curve_ == reference.loss_curve_
    assert resumed.history_[:, "lr"] == reference.history_[:, "lr"]
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))


@pytest.mark.parametrize(
    ("params", "named"),
    [({"prune_ratio": 1.0}, "prune_ratio"), ({"prune_ratio": -0.1}, "prune_ratio"),
     ({"anneal": 1.5}, "anneal")],
)  # fmt: skip
def test_parameters_out_of_range_are_refused_before_training(params, named, breast_cancer):
    with pytest.raises(ValueError, match=named):
        InfoBatchClassifier(**{**FAST, **params}).fit(*breast_cancer)


# ---------------------------------------------------------------- the harness


def test_the_harness_races_infobatch_against_uniform_sgd(tmp_path, monkeypatch):
    fake_datasets.install(monkeypatch)
    model = make_model("infobatch", "tabular", 2, None, Budget(), seed=3, tune=False)[-1]
    assert isinstance(model, InfoBatchClassifier)
    assert (model.optimizer, model.lr, model.random_state) == ("sgd", Budget().sgd_lr, 3)
    argv = ["speed", "--dataset", "breast_cancer", "--method", "infobatch", "--max-epochs", "4",
            "--hidden", "16", "--budgets", "1", "--param", "anneal=0.25",
            "--output", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    speed = pd.read_csv(tmp_path / "speed.csv")
    assert speed["method"].tolist() == ["uniform SGD", "infobatch (sgd)"]
    assert (speed["epochs_run"] == 4).all()  # the same epochs, the method's with fewer steps
