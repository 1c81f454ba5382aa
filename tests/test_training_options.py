"""Training options: early stopping, schedules, warm start, weights, optimizers, callbacks."""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import compute_sample_weight
from skorch.callbacks import Callback

from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier
from sk_reweight._schedules import cosine_schedule

from .settings import FAST, RecordsValidationSet, held_out_rows


def test_trains_exactly_max_epochs_without_early_stopping(breast_cancer):
    model = RGDClassifier(**FAST).fit(*breast_cancer)
    assert model.n_iter_ == FAST["max_epochs"] == len(model.loss_curve_)
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]
    assert model.validation_loss_curve_ is None
    assert model.best_validation_loss_ is None


def test_early_stopping_stops_and_restores_the_best_epoch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 20))
    y = rng.integers(0, 2, 200)  # pure noise: the validation loss soon rises
    model = ERMClassifier(
        hidden_layer_sizes=(256,),
        lr=1e-2,
        max_epochs=200,
        early_stopping=True,
        n_iter_no_change=5,
        validation_fraction=0.25,
        device="cpu",
        random_state=0,
        callbacks=[("validation_set", RecordsValidationSet())],
    ).fit(X, y)
    assert model.n_iter_ < 200
    curve = model.validation_loss_curve_
    best_epoch = int(np.argmin(curve))
    assert model.n_iter_ == best_epoch + 1 + 5
    assert model.best_validation_loss_ == min(curve)
    assert model.net_.train_split is None  # the validation rows are not kept
    held_out = held_out_rows(model, X)
    with torch.no_grad():
        logits = model.net_.module_(torch.tensor(X[held_out], dtype=torch.float32))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[held_out])).item()
    assert loss == pytest.approx(model.best_validation_loss_, rel=1e-5)


@pytest.mark.parametrize(
    ("schedule", "final_factor"),
    [
        (None, 1.0),
        ("cosine", cosine_schedule(9.75, 10)),
        ("step", 0.01),
        (math.exp, math.exp(9.75)),
    ],
)
def test_lr_schedule_reaches_the_expected_final_learning_rate(
    breast_cancer, schedule, final_factor
):
    X, y = breast_cancer
    model = ERMClassifier(**{**FAST, "max_epochs": 10, "batch_size": 128, "lr_schedule": schedule})
    # 4 batches per epoch: the last step is at epoch 9.75. A learning rate growing to 17 diverges.
    diverges = schedule is math.exp
    with pytest.warns(ConvergenceWarning, match="diverged") if diverges else nullcontext():
        model.fit(X[:512], y[:512])
    assert model.history_[-1, "lr"] == pytest.approx(1e-3 * final_factor)


def test_warm_start_continues_from_the_fitted_network(breast_cancer):
    X, y = breast_cancer
    model = ERMClassifier(**{**FAST, "warm_start": True}).fit(X, y)
    first_curve = list(model.loss_curve_)
    module = model.net_.module_
    model.fit(X, y)
    assert model.net_.module_ is module
    assert model.n_iter_ == 2 * FAST["max_epochs"]
    assert model.loss_curve_[: len(first_curve)] == first_curve
    assert model.loss_curve_[len(first_curve)] < first_curve[0] / 2
    with pytest.raises(ValueError, match="new classes"):
        model.fit(X, np.where(y == 1, 2, y))


def test_refit_without_warm_start_starts_over(breast_cancer):
    model = ERMClassifier(**FAST).fit(*breast_cancer)
    first = model.predict_proba(breast_cancer[0])
    model.fit(*breast_cancer)
    assert model.n_iter_ == FAST["max_epochs"]
    np.testing.assert_array_equal(model.predict_proba(breast_cancer[0]), first)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5}])
def test_class_weight_equals_the_corresponding_sample_weight(breast_cancer, class_weight):
    X, y = breast_cancer
    sample_weight = np.linspace(0.5, 1.5, len(y))
    by_class = RGDClassifier(**{**FAST, "class_weight": class_weight}).fit(
        X, y, sample_weight=sample_weight
    )
    by_sample = RGDClassifier(**FAST).fit(
        X, y, sample_weight=sample_weight * compute_sample_weight(class_weight, y)
    )
    np.testing.assert_allclose(by_class.predict_proba(X), by_sample.predict_proba(X), rtol=1e-6)
    assert not np.allclose(
        by_class.predict_proba(X), RGDClassifier(**FAST).fit(X, y).predict_proba(X)
    )


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        ("sgd", torch.optim.SGD),
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("adagrad", torch.optim.Adagrad),
        (torch.optim.RMSprop, torch.optim.RMSprop),
    ],
)
def test_optimizer_choice(breast_cancer, optimizer, expected):
    model = RGDClassifier(
        **{**FAST, "optimizer": optimizer, "weight_decay": 1e-4, "momentum": 0.5}
    ).fit(*breast_cancer)
    assert type(model.net_.optimizer_) is expected
    group = model.net_.optimizer_.param_groups[0]
    assert group["weight_decay"] == 1e-4
    if expected is torch.optim.SGD:
        assert group["momentum"] == 0.5
    assert model.score(*breast_cancer) > 0.9


class CountEpochs(Callback):
    def initialize(self):
        self.epochs_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1


def test_user_callbacks_run_on_a_copy(breast_cancer):
    callback = CountEpochs()
    model = ERMClassifier(**{**FAST, "callbacks": [("count", callback)]}).fit(*breast_cancer)
    assert dict(model.net_.callbacks_)["count"].epochs_ == FAST["max_epochs"]
    assert not hasattr(callback, "epochs_")


def test_verbose_prints_one_row_per_epoch_with_weight_statistics(breast_cancer, capsys):
    RGDClassifier(**{**FAST, "verbose": 1}).fit(*breast_cancer)
    lines = capsys.readouterr().out.strip().splitlines()
    assert "rgd_weight_mean" in lines[0]
    assert "train_loss" in lines[0]
    assert len(lines) == 2 + FAST["max_epochs"]
    RGDClassifier(**FAST).fit(*breast_cancer)
    assert capsys.readouterr().out == ""


def test_rgd_weight_statistics_in_history(breast_cancer):
    tau = 2.0
    model = RGDClassifier(**{**FAST, "tau": tau, "warmup_epochs": 3}).fit(*breast_cancer)
    history = model.history_
    for epoch in range(3):
        assert history[epoch, "rgd_weight_min"] == history[epoch, "rgd_weight_max"] == 1.0
    for epoch in range(3, model.n_iter_):
        low, mean, high = (history[epoch, f"rgd_weight_{k}"] for k in ("min", "mean", "max"))
        assert 1.0 <= low <= mean <= high <= math.exp(tau / (tau + 1)) + 1e-6
    # Training makes examples easier: the mean weight falls.
    assert history[-1, "rgd_weight_mean"] < history[3, "rgd_weight_mean"]


def test_rgd_reduces_to_erm_for_huge_tau(breast_cancer):
    X, y = breast_cancer
    erm = ERMClassifier(**FAST).fit(X, y).predict_proba(X)
    rgd = RGDClassifier(**{**FAST, "tau": 1e12}).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(rgd, erm, atol=1e-5)
    reweighted = RGDClassifier(**{**FAST, "tau": 1.0}).fit(X, y).predict_proba(X)
    assert np.abs(reweighted - erm).max() > 1e-3


def test_module_factory_receives_input_shape_and_class_count(digits):
    X, y = digits
    seen = {}

    def factory(input_shape, n_classes):
        seen.update(input_shape=input_shape, n_classes=n_classes)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, n_classes))

    model = ERMClassifier(**{**FAST, "module": factory, "lr": 1e-2}).fit(X.reshape(-1, 8, 8), y)
    assert seen == {"input_shape": (1, 8, 8), "n_classes": 10}
    assert model.score(X.reshape(-1, 8, 8), y) > 0.9


def test_module_instance_is_reinitialised_from_random_state(breast_cancer):
    module = torch.nn.Linear(30, 2)
    fits = [
        ERMClassifier(**{**FAST, "module": module, "max_epochs": 1, "random_state": seed})
        .fit(*breast_cancer)
        .net_.module_.weight
        for seed in (0, 0, 1)
    ]
    torch.testing.assert_close(fits[0], fits[1])
    assert not torch.equal(fits[0], fits[2])


def test_dropout_is_active_in_training_only(breast_cancer):
    X, y = breast_cancer
    model = ERMClassifier(**{**FAST, "dropout": 0.5, "hidden_layer_sizes": (64, 32)}).fit(X, y)
    dropouts = [m for m in model.net_.module_.modules() if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in dropouts] == [0.5, 0.5]
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X))
    assert model.score(X, y) > 0.9


@pytest.mark.parametrize("Classifier", [ERMClassifier, RGDClassifier, RAISClassifier])
def test_divergence_is_a_clear_error_not_nan_predictions(Classifier, breast_cancer):
    X, y = breast_cancer
    model = Classifier(**{**FAST, "optimizer": "sgd", "lr": 1e12})
    with pytest.raises(FloatingPointError, match=r"training diverged in epoch 1.*Lower lr"):
        model.fit(X * 1e3, y)
