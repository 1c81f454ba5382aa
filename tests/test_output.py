"""What a fit shows: the verbose table and bar in files, pipes and terminals, validation
accuracy, the notebook's HTML representation, and no torch warning for read-only input."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_html_repr

import sk_reweight._documentation as documentation
from sk_reweight import ERMClassifier, RAISClassifier, RGDClassifier
from sk_reweight._output import is_interactive, shows_colours

from .settings import FAST, RecordsValidationSet, held_out_rows

ROOT = Path(__file__).resolve().parents[1]
ESCAPE = "\x1b["

VERBOSE_FITS = """\
import os
import sys
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler
from sk_reweight import ERMClassifier

torch.set_num_threads(1)
X, y = load_breast_cancer(return_X_y=True)
X = StandardScaler().fit_transform(X)
for fit in sys.argv[1:]:  # VERBOSE or VERBOSE:NO_COLOR, one fit each
    verbose, _, no_color = fit.partition(":")
    os.environ["NO_COLOR"] = no_color
    ERMClassifier(
        max_epochs=3, n_iter_no_change=None, batch_size=16, early_stopping=True,
        verbose=int(verbose), device="cpu", random_state=0,
    ).fit(X, y)
"""
"""Fits of 3 epochs (32 training and 4 validation batches each) that print their tables."""


def child_environment(**extra: str) -> dict[str, str]:
    """The environment of a child Python that imports this checkout's sk_reweight."""
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    return {**environment, "OMP_NUM_THREADS": "1", **extra}


def run_in_pipes(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=child_environment(),
        timeout=600,
        check=True,
    )


def run_on_a_terminal(script: str, *args: str) -> str:
    """Run ``script`` with stdout and stderr on one pseudo-terminal of 100 columns."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=terminal,
        stderr=terminal,
        env=child_environment(),
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=600) == 0, b"".join(chunks).decode()
    return b"".join(chunks).decode()


def visible_lines(output: str) -> list[str]:
    """The lines a terminal shows: what follows each line's last carriage return."""
    return [line.rsplit("\r", 1)[-1].rstrip() for line in output.split("\r\n") if line]


def tables(lines: list[str]) -> list[list[str]]:
    """``lines`` cut into tables, each starting at its header."""
    starts = [i for i, line in enumerate(lines) if line.split()[:1] == ["epoch"]]
    return [lines[start:end] for start, end in zip(starts, [*starts[1:], len(lines)], strict=True)]


def is_table(lines: list[str], n_epochs: int = 3) -> bool:
    header, rule, *rows = lines
    return (
        header.split() == ["epoch", "lr", "train_loss", "valid_acc", "valid_loss", "dur"]
        and set(rule.replace(" ", "")) == {"-"}
        and [row.split()[0] for row in rows] == [str(epoch + 1) for epoch in range(n_epochs)]
    )


# ---------------------------------------------------------------- the verbose table


def test_verbose_output_into_a_pipe_is_the_plain_table():
    finished = run_in_pipes(VERBOSE_FITS, "1", "2")
    assert ESCAPE not in finished.stdout + finished.stderr
    assert "\r" not in finished.stdout + finished.stderr  # no progress bar either
    assert finished.stderr == ""
    verbose_1, verbose_2 = tables(finished.stdout.splitlines())
    assert is_table(verbose_1)
    assert is_table(verbose_2)


def test_verbose_output_on_a_terminal_is_coloured_and_the_bar_never_shares_a_row():
    output = run_on_a_terminal(VERBOSE_FITS, "2", "1:1")
    with_bar, no_color = output.split("\r\n  epoch")
    assert ESCAPE + "32m" in with_bar  # the best train_loss, in skorch's colours
    assert with_bar.count("batch/s]") >= 3  # a bar in every epoch
    plain = re.sub(r"\x1b\[\d+m", "", with_bar)
    assert is_table(visible_lines(plain))  # each bar erased before its epoch's row
    assert ESCAPE not in no_color  # NO_COLOR=1
    assert is_table(visible_lines("  epoch" + no_color))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_follow_isatty(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert shows_colours(Terminal())
    assert is_interactive(Terminal())
    assert not shows_colours(io.StringIO())
    assert not is_interactive(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not is_interactive(closed)  # isatty raises ValueError
    monkeypatch.setenv("NO_COLOR", "1")
    assert not shows_colours(Terminal())
    assert is_interactive(Terminal())


def test_verbose_2_in_captured_output_draws_no_bar(breast_cancer, capsys):
    ERMClassifier(**{**FAST, "max_epochs": 2, "verbose": 2}).fit(*breast_cancer)
    printed = capsys.readouterr()
    assert printed.err == ""
    assert "\r" not in printed.out
    assert ESCAPE not in printed.out
    assert len(printed.out.splitlines()) == 2 + 2


# -------------------------------------------------------------- validation accuracy


@pytest.mark.parametrize("Classifier", [ERMClassifier, RGDClassifier, RAISClassifier])
def test_valid_acc_is_the_weighted_accuracy_on_the_validation_split(Classifier, breast_cancer):
    X, y = breast_cancer
    weights = np.where(y == 1, 1.0, 3.0)
    model = Classifier(
        **{**FAST, "early_stopping": True, "validation_fraction": 0.2, "n_iter_no_change": None},
        callbacks=[("validation_set", RecordsValidationSet())],
    ).fit(X, y, sample_weight=weights)
    history = model.history_
    held_out = held_out_rows(model, X)
    assert len(held_out) == int(np.ceil(0.2 * len(y)))
    # The final network is the best epoch's (lowest valid_loss), restored by early stopping.
    best = int(np.argmin(history[:, "valid_loss"]))
    predicted = model.predict(X[held_out])
    expected = accuracy_score(y[held_out], predicted, sample_weight=weights[held_out])
    assert history[best, "valid_acc"] == pytest.approx(expected, abs=1e-6)
    accuracies = history[:, "valid_acc"]
    best_before = np.maximum.accumulate(accuracies)[:-1]
    flags = history[:, "valid_acc_best"]
    assert flags[0]
    assert flags[1:] == [bool(a > b) for a, b in zip(accuracies[1:], best_before, strict=True)]


def test_valid_acc_only_with_a_validation_split(breast_cancer):
    model = ERMClassifier(**{**FAST, "max_epochs": 2}).fit(*breast_cancer)
    assert "valid_acc" not in model.history_[-1]


# ------------------------------------------------------------ HTML representation


def test_html_representation_links_each_classifier_to_its_api_page(monkeypatch):
    monkeypatch.setenv(documentation.DOCS_URL_VARIABLE, "https://docs.example.org/sk_reweight")
    pipeline = make_pipeline(StandardScaler(), RGDClassifier(tau=2.0))
    html = estimator_html_repr(pipeline)
    page = "https://docs.example.org/sk_reweight/generated/sk_reweight.RGDClassifier.html"
    assert f'href="{page}"' in html
    # Parameter tooltips come with the link: the docstring's description of tau.
    assert f'href="{page}#:~:text=tau' in html
    assert "Clip level of the loss" in html
    for Classifier in (ERMClassifier, RAISClassifier):
        assert f"generated/sk_reweight.{Classifier.__name__}.html" in Classifier()._repr_html_()


def test_doc_link_defaults_to_the_site_built_in_the_clone(monkeypatch, tmp_path):
    monkeypatch.delenv(documentation.DOCS_URL_VARIABLE, raising=False)
    monkeypatch.setattr(documentation, "BUILT_SITE", tmp_path)
    assert ERMClassifier()._get_doc_link() == ""  # not built: no link, as for other packages
    (tmp_path / "index.html").write_text("<html></html>")
    link = ERMClassifier()._get_doc_link()
    assert link == f"{tmp_path.as_uri()}/generated/sk_reweight.ERMClassifier.html"
    monkeypatch.setenv(documentation.DOCS_URL_VARIABLE, "https://a.example/{docs}/")
    assert ERMClassifier()._get_doc_link() == (
        "https://a.example/{docs}/generated/sk_reweight.ERMClassifier.html"
    )


# ---------------------------------------------------------------- read-only input

READ_ONLY_FITS = textwrap.dedent(
    """\
    import warnings
    import numpy as np
    import pandas as pd
    import torch
    from sk_reweight import ERMClassifier, RAISClassifier

    torch.set_num_threads(1)
    warnings.simplefilter("error")  # torch warns once per process: the first offence fails
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    images = rng.standard_normal((60, 1, 6, 6)).astype(np.float32)
    for array in (X, y, images):
        array.setflags(write=False)
    frame = pd.DataFrame(X)  # float32, read-only under pandas' copy-on-write
    before = X.copy()
    quick = {"max_epochs": 2, "n_iter_no_change": None, "device": "cpu", "random_state": 0}
    for inputs in (X, frame, images):
        for Classifier in (ERMClassifier, RAISClassifier):
            model = Classifier(**quick).fit(inputs, y)
            model.predict(inputs), model.predict_proba(inputs), model.score(inputs, y)
        ERMClassifier(**quick).partial_fit(inputs, y, classes=[0, 1]).partial_fit(inputs, y)
    assert not X.flags.writeable and np.array_equal(X, before)
    print("no warning")
    """
)


def test_read_only_arrays_give_no_torch_warning():
    finished = run_in_pipes(READ_ONLY_FITS)
    assert finished.stdout.strip() == "no warning", finished.stderr
