"""Image augmentation of training minibatches: random crops of the zero-padded image, flips.

The augmentations of the RAIS paper's image experiments (Johnson & Guestrin 2018,
section 6: CIFAR images padded to 40 x 40 and cropped back to 32 x 32 at a random
position, and randomly reflected), which are those of He et al. 2016 (section
4.2). Every function is vectorised over the batch (no per-example Python loop)
and draws from the generator it is given, on the batch's device, so that a fit's
seed reproduces its augmentations.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

AUGMENTATIONS = ("crop", "crop_flip")
"""The values of the classifiers' ``augmentation`` parameter besides ``None``."""


def crop_padding(height: int, width: int) -> int:
    r"""The zero padding ``p`` of the random crop for images of ``height`` x ``width`` pixels.

    .. math:: p = \lceil \min(H, W) / 8 \rceil

    an eighth of the image's shorter side: 4 pixels for 32 x 32 images, as the
    RAIS paper (section 6, "pad to 40x40 pixels; crop to 32x32") and He et al.
    (2016, section 4.2) pad CIFAR, 4 for 28 x 28 (Fashion-MNIST, MNIST) and 1 for
    8 x 8 (scikit-learn's digits). A shift by at most ``p`` keeps at least three
    quarters of the image in each direction.
    """
    return math.ceil(min(height, width) / 8)


def crop_offsets(
    n_images: int, padding: int, generator: torch.Generator, device: torch.device | str
) -> Tensor:
    """Offsets of ``n_images`` random crops, uniform over the ``(2 p + 1)^2`` positions.

    Returns
    -------
    offsets : Tensor of shape (n_images, 2), int64, on ``device``
        Row and column offset of each crop in the padded image, each in
        ``0 .. 2 * padding``, drawn independently from ``generator`` (which
        must live on ``device``).
    """
    return torch.randint(2 * padding + 1, (n_images, 2), generator=generator, device=device)


def crop_padded(X: Tensor, offsets: Tensor, padding: int) -> Tensor:
    r"""Crop each zero-padded image back to its size at its own offset.

    With :math:`\tilde X` the images padded by ``p = padding`` zeros on every
    side and :math:`(a_i, b_i)` the offsets of image :math:`i`,

    .. math:: Y_{i c y x} = \tilde X_{i, c, y + a_i, x + b_i}
              = X_{i, c, y + a_i - p, x + b_i - p}
              \quad (0 \text{ outside the image})

    for :math:`0 \le y < H`, :math:`0 \le x < W`: the image translated by
    :math:`(p - a_i, p - b_i)` pixels, the uncovered border filled with zeros.
    Offsets ``(p, p)`` leave the image unchanged. One gather of the padded
    batch, no loop over images.

    Parameters
    ----------
    X : Tensor of shape (n, C, H, W)
        The images.
    offsets : Tensor of shape (n, 2), int64
        Row and column offsets, in ``0 .. 2 * padding``, on the device of ``X``.
    padding : int >= 0
        Zeros added on every side before cropping.

    Returns
    -------
    Tensor of shape (n, C, H, W)
        The crops.
    """
    n, channels, height, width = X.shape
    padded = functional.pad(X, (padding, padding, padding, padding))
    rows = offsets[:, 0, None] + torch.arange(height, device=X.device)  # (n, H)
    columns = offsets[:, 1, None] + torch.arange(width, device=X.device)  # (n, W)
    return padded[
        torch.arange(n, device=X.device)[:, None, None, None],
        torch.arange(channels, device=X.device)[None, :, None, None],
        rows[:, None, :, None],
        columns[:, None, None, :],
    ]


def random_crop(X: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Random crops with zero padding (He et al. 2016, section 4.2; the RAIS paper, section 6).

    Each image is padded with ``padding`` zeros on every side and cropped back
    to its size at an offset drawn uniformly from the ``(2 p + 1)^2``
    positions (:func:`crop_offsets`, :func:`crop_padded`): a random
    translation by at most ``padding`` pixels in each direction.

    Parameters
    ----------
    X : Tensor of shape (n, C, H, W)
        The images.
    padding : int >= 0
        The padding ``p``; see :func:`crop_padding`.
    generator : torch.Generator
        The generator of the draws, on the device of ``X``.

    Returns
    -------
    Tensor of shape (n, C, H, W)
    """
    return crop_padded(X, crop_offsets(len(X), padding, generator, X.device), padding)


def random_horizontal_flip(X: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left to right with probability 1/2, independently.

    The reflections of the RAIS paper's CIFAR experiments (section 6). They do
    not preserve digits or text (a mirrored 2 is no 2), hence a separate
    option.

    Parameters
    ----------
    X : Tensor of shape (n, C, H, W)
        The images.
    generator : torch.Generator
        The generator of the draws, on the device of ``X``.

    Returns
    -------
    Tensor of shape (n, C, H, W)
    """
    flipped = torch.randint(2, (len(X), 1, 1, 1), generator=generator, device=X.device)
    return torch.where(flipped.bool(), X.flip(-1), X)


def augment(X: Tensor, augmentation: str, generator: torch.Generator) -> Tensor:
    """Apply the ``augmentation`` (one of :data:`AUGMENTATIONS`) to a batch of images.

    ``'crop'`` is :func:`random_crop` with the padding of :func:`crop_padding`;
    ``'crop_flip'`` adds :func:`random_horizontal_flip`.
    """
    cropped = random_crop(X, crop_padding(*X.shape[-2:]), generator)
    return random_horizontal_flip(cropped, generator) if augmentation == "crop_flip" else cropped


def augmentation_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A generator on ``device`` for a fit's augmentation, derived from the fit's ``seed``.

    A stream of its own (:meth:`numpy.random.SeedSequence.spawn`), independent
    of the generator of the minibatch policy, which stays seeded with ``seed``:
    turning augmentation on changes no minibatch the policy draws.
    """
    (child,) = np.random.SeedSequence(seed).spawn(1)
    return torch.Generator(device).manual_seed(int(child.generate_state(1, np.uint64)[0] >> 1))
