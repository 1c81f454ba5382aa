"""What recording valid_acc costs: the validation pass against the one before it, same process.

The validation pass of ``ReweightingNet.run_single_epoch`` (which records
``valid_acc`` since issue 18) and the same method as it was before, read from
an older ``_engine.py``, alternate 40 times on 2,000 validation rows of a fitted
default MLP (20 features, batch 128, one torch thread)::

    git show d5b8ed0:sk_reweight/_engine.py > /tmp/engine_before.py
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_valid_acc.py /tmp/engine_before.py
"""

import ast
import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

import sk_reweight._engine as engine
from sk_reweight import ERMClassifier
from sk_reweight._data import TensorDataset
from sk_reweight._engine import SigintFlag

torch.set_num_threads(1)

source = Path(sys.argv[1]).read_text()
method = next(
    node
    for node in ast.walk(ast.parse(source))
    if isinstance(node, ast.FunctionDef) and node.name == "run_single_epoch"
)
namespace = dict(vars(engine))
exec(textwrap.dedent(ast.get_source_segment(source, method)), namespace)
parent_pass = namespace["run_single_epoch"]

rng = np.random.default_rng(0)
n = 20_000
X = rng.standard_normal((n, 20)).astype(np.float32)
y = (X[:, :3].sum(1) + 0.5 * rng.standard_normal(n) > 0).astype(int)
model = ERMClassifier(early_stopping=True, max_epochs=1, device="cpu", random_state=0).fit(X, y)
net = model.net_
net._sigint = SigintFlag()
valid = TensorDataset(torch.tensor(X[:2000]), torch.tensor(y[:2000]), torch.ones(2000))
times = {"with valid_acc": [], "before": []}
for _ in range(40):
    for name, run in (("with valid_acc", type(net).run_single_epoch), ("before", parent_pass)):
        net.history.new_epoch()
        start = time.perf_counter()
        run(
            net,
            net.get_iterator(valid),
            training=False,
            prefix="valid",
            step_fn=net.validation_step,
        )
        times[name].append(time.perf_counter() - start)
ratios = np.array(times["with valid_acc"]) / np.array(times["before"])
print(
    json.dumps(
        {
            "median_ms": {k: round(1000 * float(np.median(v)), 2) for k, v in times.items()},
            "ratio_median": round(float(np.median(ratios)), 3),
            "ratio_q25_q75": [round(float(q), 3) for q in np.quantile(ratios, [0.25, 0.75])],
            "train_epoch_s": round(float(net.history[0, "dur"]), 3),
        }
    )
)
