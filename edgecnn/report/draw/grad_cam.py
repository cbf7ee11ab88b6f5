"""``grad_cam.png``: Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) of the float Keras
model for a few test images, with their true and predicted labels.

Example:
    >>> cams, probs, layer = grad_cam(model, x_test[:4])  # doctest: +SKIP
    >>> plot_grad_cam(x_test[:4], spec, cams, probs, y_test[:4], names, layer, Path("grad_cam.png"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgecnn.errors import UserError
from edgecnn.report.draw._common import class_name, draw_image, output_shape, pyplot, save_png


def last_spatial_layer(model) -> str:
    """The last layer whose output is still a map (4-D, more than 1x1): where Grad-CAM looks."""
    name = None
    for layer in model.layers:
        shape = output_shape(layer)
        if shape is not None and len(shape) == 4 and (shape[1] or 0) * (shape[2] or 0) > 1:
            name = layer.name
    if name is None:
        raise UserError(f"{model.name} has no layer with a spatial output: no Grad-CAM or feature maps to show")
    return name


def grad_cam(model, images: np.ndarray, layer: str | None = None) -> tuple:
    """Grad-CAM heatmaps of ``model`` for ``images`` (NHWC, normalized), for the class it predicts.

    The predicted class's score before the softmax (the input of a final softmax layer, else
    the log-probability) is differentiated with respect to ``layer``'s output (default: the
    last spatial one); each channel is weighted by its mean gradient and the weighted sum,
    after a ReLU, is scaled to [0, 1]. Returns ``(cams, probabilities, layer)``, ``cams`` of
    shape ``(N, h, w)`` at the layer's resolution.

    Example:
        >>> cams, probs, layer = grad_cam(model, x_test[:4])  # doctest: +SKIP
    """
    from edgecnn._tf import keras, tf

    layer = layer or last_spatial_layer(model)
    last = model.layers[-1]
    softmax_layer = isinstance(last, keras.layers.Activation) and getattr(last.activation, "__name__", "") == "softmax"
    scores_out = last.input if softmax_layer else model.outputs[0]
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, scores_out, model.outputs[0]])
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        fmap, scores, probs = probe(x, training=False)
        if not softmax_layer:
            scores = tf.math.log(tf.maximum(scores, 1e-12))
        chosen = tf.gather(scores, tf.argmax(probs, axis=-1), axis=1, batch_dims=1)
    grads = tape.gradient(chosen, fmap)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1)).numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    cam = np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0.0)
    return cam, probs.numpy(), layer


def plot_grad_cam(images: np.ndarray, spec: dict, cams: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                  names: list, layer: str, path: Path) -> Path:
    """``grad_cam.png``: each test image above its Grad-CAM heatmap, with the true and the
    predicted label (green when right, red when wrong)."""
    plt = pyplot()
    n = len(images)
    cols = min(n, 6)
    groups = math.ceil(n / cols)
    fig, axes = plt.subplots(2 * groups, cols, figsize=(max(cols, 3) * 2.1, groups * 4.4 + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_visible(False)
    h, w = images.shape[1:3]
    for i in range(n):
        top, bottom = axes[2 * (i // cols)][i % cols], axes[2 * (i // cols) + 1][i % cols]
        pred = int(np.argmax(probs[i]))
        true = int(labels[i])
        draw_image(top, images[i], spec)
        top.set_title(f"true: {class_name(names, true)}", fontsize=8)
        draw_image(bottom, images[i], spec)
        bottom.imshow(cams[i], cmap="jet", alpha=0.45, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                      interpolation="bilinear", vmin=0, vmax=1)
        bottom.set_title(f"pred: {class_name(names, pred)} ({100 * float(probs[i][pred]):.0f}%)", fontsize=8,
                         color="tab:green" if pred == true else "tab:red")
    fig.suptitle(f"Grad-CAM of the float Keras model at layer '{layer}' ({cams.shape[1]}x{cams.shape[2]}): "
                 "where the predicted class's evidence lies (red = most)", fontsize=9)
    return save_png(fig, path)
