"""Published ImageNet weights, declared beside each family (timm's ``pretrained_cfg``).

A family module whose architecture Keras Applications publishes weights for declares them
in a module-level ``PRETRAINED`` table, Keras model name -> :class:`KerasWeights`: the
file name pattern per variant (alpha, resolution, with or without the top), the URL
folder, the md5 Keras checks, the input convention the weights were trained with, and how
a Keras file is told from an edgecnn one. Its variants register the declaration
(``register_model(pretrained=PRETRAINED["ResNet50"])``), so ``model_info(name)`` carries
it. :mod:`edgecnn.models._weights` only fetches and reads files; it knows no family.

The values are copied from tf_keras' ``applications/*.py`` (``BASE_WEIGHT(S)_PATH``,
``WEIGHTS_HASHES`` and the hashes inline in VGG's and DenseNet's code), not imported
from its private modules; ``tests/test_weights.py`` compares each with tf_keras' source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

from edgecnn.errors import UserError

# The input conventions of tf_keras' ``preprocess_input`` modes (and of the models that
# rescale inside the network), as ``preprocess.json`` spells them (see edgecnn.device.preprocess).
TF_MODE = {"scale": 1.0 / 127.5, "offset": -1.0}  # [-1, 1]
IN_MODEL = {"scale": 1.0, "offset": 0.0}  # 0..255: the network rescales itself
CAFFE_MODE = {"scale": 1.0, "offset": 0.0, "channel_order": "BGR", "mean": [103.939, 116.779, 123.68]}
TORCH_MODE = {"scale": 1.0 / 255.0, "offset": 0.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

# Keras Applications' weight files live under these two folders.
KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
KERAS_APPLICATIONS_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"


@dataclass(frozen=True)
class KerasWeights:
    """One Keras Applications model's published ImageNet weight files.

    Attributes:
        app: the Keras Applications model (``"ResNet50"``); ``edgecnn list`` shows it.
        url: the folder the file name is appended to.
        file: the file name, a pattern of ``{variant}`` and ``{top}``.
        published: every published variant -> ``(md5 with the top, md5 without)``; ``None``
            where Keras publishes no hash (MobileNet v1 and v2).
        convention: how pixels were prepared when the weights were trained (``scale``,
            ``offset``, and ``channel_order``, ``mean``, ``std`` where needed).
        first_layer: the first layer with weights in Keras' files: how a Keras file is
            told from one an edgecnn model wrote (their layer names differ there).
        variant: how the builder's arguments name the variant: a pattern of ``{alpha}``
            (spelled by ``alphas``), ``{rows}`` and ``{minimalistic}``.
        top: the file name's suffix with the top and without it.
        alphas: the published widths -> their spelling in ``variant``; ``None``: any
            alpha, spelled as Python prints it, and ``published`` decides.
        rows: the published input sizes; another size takes the 224 file (the weights
            of a fully convolutional body fit any size).
        compat_note: what ``keras_compatible=True`` changes, said when a Keras file
            selects it (families whose network differs from Keras' by default).
        file_order: puts a file's ``[(layer, weights)]`` in the model's order when Keras
            builds the layers in another order (ResNet's shortcut first), or ``None``.
    """

    app: str
    url: str
    file: str
    published: Mapping[str, tuple[str | None, str | None]]
    convention: Mapping
    first_layer: str
    variant: str = "{alpha}"
    top: tuple[str, str] = ("", "_notop")
    alphas: Mapping[float, str] | None = field(default_factory=lambda: {1.0: "1.0"})
    rows: tuple[int, ...] = (224,)
    compat_note: str | None = None
    file_order: Callable | None = None

    def file_for(self, alpha: float, rows: int, include_top: bool, minimalistic: bool = False):
        """``(file name, URL, md5 or None)`` of the file for a model built with these
        arguments; a width or variant Keras does not publish: one line.

        Example:
            >>> from edgecnn.models.mobilenet import PRETRAINED
            >>> PRETRAINED["MobileNet"].file_for(0.25, 160, include_top=False)[0]
            'mobilenet_2_5_160_tf_no_top.h5'
        """
        if self.alphas is not None and alpha not in self.alphas:
            widths = sorted(self.alphas)
            said = "alpha 1 only" if widths == [1.0] else "alpha " + ", ".join(map(str, widths))
            raise UserError(f"Keras publishes {self.app} weights for {said}; got alpha {alpha:g}")
        variant = self.variant.format(
            alpha=self.alphas[alpha] if self.alphas is not None else alpha,
            rows=rows if rows in self.rows else 224,
            minimalistic="_minimalistic" if minimalistic else "",
        )
        if variant not in self.published:
            raise UserError(f"Keras publishes no {self.app} weights for {variant}; it has: {', '.join(self.published)}")
        name = self.file.format(variant=variant, top=self.top[0 if include_top else 1])
        return name, self.url + name, self.published[variant][0 if include_top else 1]
