"""The parameters and fitted attributes that every classifier shares, documented once.

Each classifier's docstring holds the lines ``{shared_parameters}`` and
``{shared_attributes}``, which :func:`fill_shared_docs` replaces with these
sections, so that the numpydoc pages, ``help()`` and the HTML representation's
tooltips all read the same text.
"""

from __future__ import annotations

SHARED_PARAMETERS_DOC = """\
    module : None, torch.nn.Module or callable, default=None
        The network; it must return one logit per class. ``None`` picks a
        default from the input: an MLP for 2-D ``X``, a compact VGG-style CNN
        (three 3x3 convolution blocks with batch normalisation, two max-pools,
        the feature maps flattened into the dense head) for images shaped
        ``(n, H, W)`` or ``(n, C, H, W)``. A module instance is deep-copied and
        its layers re-initialised under ``random_state`` at every fit. A
        callable (e.g. a module class) is called as
        ``module(input_shape, n_classes)``, with ``input_shape`` the shape of
        one example, such as ``(n_features,)`` or ``(C, H, W)``.

    hidden_layer_sizes : array-like of int, default=(100,)
        Widths of the hidden dense layers of the default network (for the CNN,
        of its head after the flattened feature maps).

    dropout : float in [0, 1), default=0.0
        Dropout probability after every hidden dense layer of the default
        network.

    augmentation : {None, 'crop', 'crop_flip'}, default=None
        Augmentation of images, as the RAIS paper trains on them (section 6):
        every training minibatch is transformed anew on the training device,
        before the forward pass; prediction, ``predict_proba`` and the
        validation split of ``early_stopping`` see the images as they are.
        ``'crop'`` pads each image with ``p = ceil(min(H, W) / 8)`` zeros on
        every side (4 pixels for 32x32 and 28x28 images, as the paper and
        He et al. 2016 pad CIFAR; 1 for 8x8) and crops it back to ``H x W``
        at an offset drawn uniformly per image: a random translation by up
        to ``p`` pixels. ``'crop_flip'`` also mirrors each image left to
        right with probability 1/2, which suits photographs but not digits
        or text. The draws come from a generator derived from
        ``random_state``, apart from the minibatch order's. Only for images
        shaped ``(n, H, W)`` or ``(n, C, H, W)``: tabular input is refused.

    optimizer : {'sgd', 'adam', 'adamw', 'adagrad'} or torch optimizer class, default='adam'
        The optimizer. A class receives ``lr`` and ``weight_decay`` (and
        ``momentum`` when it is ``torch.optim.SGD``).

    lr : float > 0, default=1e-3
        Base learning rate.

    momentum : float in [0, 1], default=0.9
        Momentum of SGD; ignored by the other optimizers.

    weight_decay : float >= 0, default=0.0
        L2 penalty (decoupled for AdamW).

    batch_size : int >= 1, default=128
        Examples per minibatch (the whole training set when larger).

    max_epochs : int >= 1, default=100
        The most epochs training may take (:class:`RAISClassifier`: epochs
        equivalent), the ceiling of the stopping rule (``n_iter_no_change``);
        exactly this many with ``n_iter_no_change=None`` or a decaying
        ``lr_schedule``, which are planned over it.

    lr_schedule : {None, 'cosine', 'step'} or callable, default=None
        Multiplier of ``lr`` as a function of the fractional epoch, updated at
        every step: ``None`` keeps ``lr``; ``'cosine'`` anneals it to 0 over
        ``max_epochs``; ``'step'`` divides it by 10 at 50 % and 75 % of
        ``max_epochs``; a callable ``f(epoch: float) -> float`` is used as is
        (define it at module level to keep the estimator picklable). A
        schedule is a plan over ``max_epochs`` epochs: training runs all of
        them, and the stopping rule on the training loss does not apply
        (with ``early_stopping=True`` the validation loss still stops it).

    class_weight : None, 'balanced' or dict, default=None
        Weights of the classes, multiplied into ``sample_weight``, as in
        :class:`sklearn.linear_model.LogisticRegression`. ``'balanced'`` uses
        ``n_samples / (n_classes * np.bincount(y))``.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified),
        let the stopping rule watch the validation loss instead of the
        training loss, and restore the weights of the best epoch (the lowest
        validation loss, by ``tol``) when training ends, as
        :class:`~sklearn.neural_network.MLPClassifier` does.

    validation_fraction : float in (0, 1), default=0.1
        Share of the training data held out for early stopping.

    n_iter_no_change : int >= 1 or None, default=10
        The stopping rule of :class:`~sklearn.neural_network.MLPClassifier`:
        training ends once the training loss (with ``early_stopping``, the
        validation loss) has not decreased by more than ``tol`` below its
        best value for ``n_iter_no_change`` epochs, or at ``max_epochs``,
        whichever comes first; reaching ``max_epochs`` first raises a
        :class:`~sklearn.exceptions.ConvergenceWarning`.
        ``history_[-1, 'stop_reason']`` says which ended the fit. :class:`RAISClassifier`
        counts these epochs in epochs equivalent, as its ``max_epochs``. The
        training-loss rule applies to a constant learning rate only
        (``lr_schedule=None``). ``None`` turns the rule off: training runs
        exactly ``max_epochs`` epochs, without the warning (with
        ``early_stopping``, the best epoch is still restored).

    tol : float >= 0, default=1e-4
        Smallest decrease of the watched loss that counts as improvement.

    device : str or torch.device, default='auto'
        Where to train: ``'auto'`` takes CUDA when available, else the CPU;
        ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``, ... name a device,
        which ``fit`` checks before training (:func:`~sk_reweight.resolve_device`: a
        backend this machine lacks is a ``ValueError`` saying so).
        On a GPU the training data are copied to the device once when they
        fit into half of its free memory, and streamed per batch otherwise.

    precision : {'fp32', 'bf16', 'fp16'}, default='fp32'
        Mixed-precision training: ``'bf16'`` or ``'fp16'`` run the training
        forward pass under :func:`torch.autocast` in bfloat16 or float16
        (faster on GPUs with tensor cores; ``'bf16'`` also works on CPUs).
        Losses, the RGD and RAIS weights and RAIS's gain ratio stay in
        float32, (PT) in float64; ``'fp16'`` adds a gradient scaler.
        Prediction is in float32. Results differ from ``'fp32'`` in the
        low-order digits.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, the validation split and the
        order of minibatches. With an int, fitting twice on the CPU with the
        same number of torch threads gives identical networks; the
        classifiers leave ``torch.get_num_threads()`` as the process has it
        (joblib's workers get fewer), see :doc:`/saving`.

    verbose : int, default=0
        0 is silent; 1 prints a table row per epoch to standard output
        (losses, validation accuracy with ``early_stopping``, learning rate,
        weight statistics, duration); 2 also shows a progress bar over each
        epoch's minibatches, on the same stream, erased before the epoch's
        row. On a terminal or in a Jupyter notebook the best values are
        coloured; redirected to a file or a pipe, the table is plain text (no
        escape codes) and no bar is drawn. ``NO_COLOR=1`` in the environment
        turns the colours off everywhere.

    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra skorch callbacks (deep-copied at every fit), e.g.
        :class:`~skorch.callbacks.EpochScoring`,
        :class:`~skorch.callbacks.Checkpoint` or
        :class:`~skorch.callbacks.EarlyStopping`. They act on ``net_``, a
        :class:`skorch.NeuralNetClassifier` trained on the class indices
        ``0 .. n_classes - 1`` (positions in ``classes_``): scorers see
        those as ``y``, and ``net_`` takes inputs shaped as the network
        does (``input_shape_``). The validation split exists only with
        ``early_stopping=True``; without it, monitor training scores
        (``'train_loss'``, ``monitor=None`` for checkpoints).
        ``EpochScoring(on_train=True)`` scores the minibatches as the policy
        drew them, with the predictions made before each step: for
        :class:`RAISClassifier` after its first epoch, draws with
        replacement, in which examples repeat and others are missing
        (``use_caching=False`` scores the whole training set instead, at the
        cost of predicting it every epoch).
        :class:`~skorch.callbacks.BatchScoring` (and
        :class:`~skorch.callbacks.PassthroughScoring`) make every batch
        record its size and loss, a device synchronisation per batch that
        the default loop avoids. :class:`~skorch.callbacks.LRScheduler` is
        refused: the learning rate is set at every step from
        ``lr_schedule``. :class:`~sk_reweight.TrainingCheckpoint` makes a
        long fit resumable after a crash.

    warm_start : bool, default=False
        When refitting, start from the fitted network's weights and optimizer
        state instead of a fresh initialisation; the learning-rate schedule
        and the policy start over, and ``history_`` is extended. ``lr``,
        ``batch_size``, ``max_epochs``, ``lr_schedule``, ``augmentation``, the
        stopping rule's (``early_stopping``, ``n_iter_no_change``, ``tol``) and
        the policy's own parameters take their new values; the network,
        optimizer, device (unless moved by :meth:`to_device`) and callbacks
        stay those of the first fit.
"""

SHARED_ATTRIBUTES_DOC = """\
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    n_features_in_ : int
        Number of features (for images: size of the second axis of ``X``).

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when ``X`` was a DataFrame with string column names.

    input_shape_ : tuple of int
        Shape of one example as the network sees it: ``(n_features,)`` or
        ``(C, H, W)``.

    net_ : skorch.NeuralNetClassifier
        The fitted skorch net, on class indices (positions in ``classes_``);
        ``net_.module_`` is the trained torch module. Pickle and
        ``skops.io`` save it as state dicts (:doc:`/saving`), loading it
        on its training device if present, else on the CPU; :meth:`to_device`
        moves it.

    history_ : skorch.History
        Per-epoch records: ``train_loss`` (mean cross-entropy, not reweighted),
        ``valid_loss`` and ``valid_acc`` (with early stopping: the
        sample-weighted accuracy on the validation split, as
        :class:`~sklearn.neural_network.MLPClassifier`'s
        ``validation_scores_``), whether each is the best so far
        (``train_loss_best``, ``valid_loss_best``, ``valid_acc_best``),
        ``lr``, ``dur``, the policy's statistics and what the ``callbacks``
        record. The last epoch of every fit records why training ended,
        ``stop_reason``: ``'no_improvement'`` (the stopping rule of
        ``n_iter_no_change``), ``'max_epochs'`` or ``'callback'`` (one of
        ``callbacks``, e.g. skorch's :class:`~skorch.callbacks.EarlyStopping`).

    n_iter_ : int
        Number of epochs trained (over all warm-started fits).

    loss_curve_ : list of float
        ``train_loss`` per epoch.

    validation_loss_curve_ : list of float or None
        ``valid_loss`` per epoch with early stopping, else None.

    best_validation_loss_ : float or None
        Lowest validation loss with early stopping (its weights were
        restored), else None.
"""


def fill_shared_docs(cls: type) -> type:
    """Replace the ``{shared_parameters}`` and ``{shared_attributes}`` lines of a class docstring.

    The placeholders stand indented like the section entries, so that the
    docstring's own indentation stays uniform.
    """
    cls.__doc__ = cls.__doc__.replace(
        "    {shared_parameters}", SHARED_PARAMETERS_DOC.rstrip()
    ).replace("    {shared_attributes}", SHARED_ATTRIBUTES_DOC.rstrip())
    return cls
