"""The device side's image preprocessing in TensorFlow ops, bit for bit.

:func:`edgecnn.device.preprocess.load_image` (Pillow) is the reference: decode, convert
to ``L``/``RGB``, then ``Image.resize(size, BILINEAR)``. Run inside ``tf.numpy_function``
it holds the GIL around every image; this module does the same work in TensorFlow kernels
(parallel, no Python per pixel) and gives the same ``uint8`` tensor:

* **Decode.** JPEG with ``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`` (libjpeg's
  ``JDCT_ISLOW`` with fancy upsampling, what Pillow uses), PNG with ``tf.io.decode_png``,
  both at the file's own channel count.
* **Colour.** Grey to RGB replicates; RGB to grey is Pillow's ``convert("L")``:
  ``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``.
* **Resize.** Pillow's ``libImaging/Resample.c`` (``precompute_coeffs``,
  ``ImagingResampleHorizontal_8bpc``/``Vertical_8bpc``): the bilinear (triangle) filter
  stretched by the scale when downscaling (antialiasing), coefficients computed in double
  and normalised per output pixel, then fixed point with ``PRECISION_BITS = 22``; each
  pass rounded (``+ 2**21``) and clipped to ``uint8``, a pass skipped when its dimension
  does not change. The horizontal pass runs first, except (Pillow 13's
  ``ImagingResampleInner``) when the height shrinks by more than twice as many pixels as
  the width: then the vertical one does (Pillow 12 and older: always horizontal first;
  :data:`VERTICAL_FIRST_RULE` follows the installed Pillow). The tables come from :func:`resize_coeffs`
  (numpy, once per ``(in_size, out_size)``) and are applied with ``gather`` and an
  ``int32`` weighted sum, which is exact (at most ``255 * 2**22 + 2**21 < 2**31``).

Files are routed by :func:`probe`, which reads the header bytes only: baseline/progressive
8-bit JPEGs with 1 or 3 components, and 8-bit grey/RGB PNGs without transparency, that
end where they should (``EOI``, ``IEND``) and declare at most
:data:`~edgecnn.device.preprocess.MAX_IMAGE_PIXELS` go through TensorFlow; everything else
(CMYK JPEGs, 12-bit or arithmetic-coded JPEGs, palette/alpha/16-bit PNGs, BMP, GIF,
truncated or corrupt files, files over the pixel limit) goes to the Pillow fallback, which
is the device side itself (and which skips and counts a file it cannot read). EXIF
orientation is ignored on both sides (the device does not transpose).
"""

from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np

from edgecnn.device.preprocess import MAX_IMAGE_PIXELS

#: How :func:`decode_resize` resizes by default: ``"pillow"`` (Pillow's C resampler on the
#: TF-decoded array) or ``"tf"`` (:func:`pillow_resize`). Same bits; on the reference machine
#: (2 shared Xeon cores) Pillow's loop costs about 0.9 ms of CPU per 256->224 RGB image and
#: the gather + int32 sum about 3 ms, so ``"pillow"`` is the default.
RESIZE = "pillow"
#: :func:`probe` results.
PILLOW, JPEG, PNG = 0, 1, 2
PRECISION_BITS = 32 - 8 - 2


def _pillow_major() -> int:
    try:
        from PIL import __version__

        return int(__version__.split(".")[0])
    except (ImportError, ValueError):  # pragma: no cover
        return 13


#: Pillow 13 runs the vertical pass first when ``in_h - out_h > 0`` and
#: ``in_h - out_h > 2 * (in_w - out_w)``; older Pillow always runs the horizontal one first.
VERTICAL_FIRST_RULE = _pillow_major() >= 13
_NO = (PILLOW, 0, 0)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# SOF markers TensorFlow and Pillow decode alike: baseline, extended sequential, progressive
# (Huffman). Lossless (C3), hierarchical (C5-C7) and arithmetic-coded (C9-CF) go to Pillow.
_SOF_OK = (0xC0, 0xC1, 0xC2)
_SOF_OTHER = (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


def probe(data: bytes) -> int:
    """:data:`JPEG` or :data:`PNG` when TensorFlow decodes ``data`` exactly as Pillow does,
    else :data:`PILLOW`. Reads the headers only (no pixel is decoded).

    Example:
        >>> probe(b"GIF89a...")
        0
    """
    return probe_size(data)[0]


def probe_size(data: bytes) -> tuple[int, int, int]:
    """``(route, height, width)``: :func:`probe`'s answer and the size the header declares
    (``0, 0`` for :data:`PILLOW`)."""
    if data[:3] == b"\xff\xd8\xff":
        return _probe_jpeg(data)
    if data[:8] == _PNG_SIGNATURE:
        return _probe_png(data)
    return PILLOW, 0, 0


def plan(data: bytes, image_size) -> tuple:
    """What the ``tf.data`` map needs of one file, in one Python call: ``(route, hi, hw, vi,
    vw)``, the route of :func:`probe` and the resize tables of :func:`resize_coeffs` for the
    header's size (1x1 dummies for :data:`PILLOW`)."""
    route, height, width = probe_size(bytes(data))
    if route == PILLOW:
        height, width = 1, 1
    return (np.int32(route), *_tables(height, width, int(image_size[0]), int(image_size[1])))


def _probe_jpeg(data: bytes) -> tuple[int, int, int]:
    n = len(data)
    if not data.endswith(b"\xff\xd9"):  # truncated (or trailing bytes): Pillow decides
        return _NO
    pos = 2
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return _NO
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return _NO
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return _NO
        if marker in _SOF_OK:
            if pos + 10 > n:
                return _NO
            precision, height, width, components = struct.unpack(">BHHB", data[pos + 4 : pos + 10])
            ok = precision == 8 and components in (1, 3) and 0 < width * height <= MAX_IMAGE_PIXELS
            return (JPEG, height, width) if ok else _NO
        if marker in _SOF_OTHER:
            return _NO
        pos += 2 + length
    return _NO


def _probe_png(data: bytes) -> tuple[int, int, int]:
    if len(data) < 45 or data[12:16] != b"IHDR" or not data.endswith(_PNG_IEND):
        return _NO
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if depth != 8 or colour not in (0, 2) or not 0 < width * height <= MAX_IMAGE_PIXELS:
        return _NO  # 16-bit, low bit depth, palette, alpha: Pillow
    pos, n = 8, len(data)
    while pos + 8 <= n:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"tRNS":  # a transparent colour: composited on white by the device side
            return _NO
        if kind in (b"IDAT", b"IEND"):
            return PNG, height, width
        pos += 12 + length
    return _NO


@lru_cache(maxsize=256)
def resize_coeffs(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's bilinear resampling table for one axis, ``in_size`` -> ``out_size``:
    ``(index, weight)``, both ``int32`` of shape ``(out_size, ksize)``; output pixel ``o``
    is ``sum_k pixel[index[o, k]] * weight[o, k]`` in fixed point (``PRECISION_BITS``).
    Taps past Pillow's window have weight 0 (their index is clamped into the image).

    ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` of ``libImaging/Resample.c``, in
    the same double-precision operations in the same order (the normalising sum is a
    sequential ``np.add.accumulate``, as C's loop).

    Example:
        >>> idx, w = resize_coeffs(4, 2)
        >>> idx.tolist()
        [[0, 1, 2, 3, 3], [1, 2, 3, 3, 3]]
        >>> w.tolist()  # 3/7, 3/7, 1/7 of 2**22
        [[1797559, 1797559, 599186, 0, 0], [599186, 1797559, 1797559, 0, 0]]
    """
    in_size, out_size = int(in_size), int(out_size)
    scale = float(np.float32(in_size)) / out_size  # (double)(in1 - in0) / outSize, in1 a float
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # BILINEAR.support
    ksize = int(np.ceil(support)) * 2 + 1
    xx = np.arange(out_size, dtype=np.float64)
    center = 0.0 + (xx + 0.5) * scale
    ss = 1.0 / filterscale
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize, dtype=np.int64)
    x = (((taps[None, :] + xmin[:, None]).astype(np.float64) - center[:, None]) + 0.5) * ss
    x = np.abs(x)
    w = np.where(x < 1.0, 1.0 - x, 0.0)
    inside = taps[None, :] < xmax[:, None]
    w = np.where(inside, w, 0.0)
    ww = np.add.accumulate(w, axis=1)[:, -1:]
    w = np.where(ww != 0.0, w / np.where(ww != 0.0, ww, 1.0), w)
    w = np.where(inside, w, 0.0)
    one = float(1 << PRECISION_BITS)
    fixed = np.where(w < 0, np.trunc(-0.5 + w * one), np.trunc(0.5 + w * one)).astype(np.int32)
    index = np.minimum(taps[None, :] + xmin[:, None], in_size - 1).astype(np.int32)
    return index, fixed


#: Output pixels per block of :func:`resize_blocks`.
BLOCK = 32


@lru_cache(maxsize=256)
def resize_blocks(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resize_coeffs` as blocks of :data:`BLOCK` output pixels, for a batched matmul:
    ``(window, weight)``, ``window`` ``int32`` ``(blocks, L)`` the input pixels block ``j``
    reads (a contiguous run, clamped into the image), ``weight`` ``float64``
    ``(blocks, BLOCK, L)`` the fixed-point weights (0 where a tap is not used). Output pixel
    ``j * BLOCK + o`` is ``weight[j, o] @ pixels[window[j]]``: at most ``255 * 2**22`` summed
    from integers, exact in float64 whatever the order. Blocks past ``out_size`` are zero."""
    index, fixed = resize_coeffs(in_size, out_size)
    n_blocks = -(-out_size // BLOCK)
    starts = index[::BLOCK, 0].astype(np.int64)  # first used input pixel of each block
    used = fixed != 0
    last = np.where(used, index, -1).max(axis=1)  # last used input pixel of each output
    length = 1
    for j in range(n_blocks):
        length = max(length, int(last[j * BLOCK : (j + 1) * BLOCK].max()) - int(starts[j]) + 1)
    window = np.minimum(starts[:, None] + np.arange(length)[None, :], in_size - 1).astype(np.int32)
    weight = np.zeros((n_blocks, BLOCK, length), np.float64)
    o, k = np.nonzero(used)
    np.add.at(weight, (o // BLOCK, o % BLOCK, index[o, k] - starts[o // BLOCK]), fixed[o, k].astype(np.float64))
    return window, weight


def _tables(height, width, out_h, out_w):
    hi, hw = resize_blocks(int(width), int(out_w))
    vi, vw = resize_blocks(int(height), int(out_h))
    return hi, hw, vi, vw


def pillow_resize(image, image_size, tf=None, tables=None):
    """``uint8`` ``(h, w, c)`` -> ``(out_h, out_w, c)``, bit-identical to Pillow's
    ``Image.resize((out_w, out_h), Image.BILINEAR)`` on an ``L``/``RGB`` image.
    ``tables``: :func:`resize_blocks` ``(hi, hw, vi, vw)`` for this image's size when known
    (from :func:`plan`), else they are looked up (a ``numpy_function`` call).

    Each pass gathers the input window of every block of :data:`BLOCK` outputs and takes the
    weighted sums as one batched float64 matmul (exact: integer sums under ``2**31``), then
    rounds (``+ 2**21``, ``>> 22``) and clips to ``uint8`` as Pillow does."""
    if tf is None:
        from edgecnn._tf import tf
    out_h, out_w = int(image_size[0]), int(image_size[1])
    shape = tf.shape(image)
    if tables is None:
        tables = tf.numpy_function(
            _tables,
            [shape[0], shape[1], np.int32(out_h), np.int32(out_w)],
            [tf.int32, tf.float64, tf.int32, tf.float64],
            stateful=False,
        )
    hi, hw, vi, vw = tables
    x = tf.cast(image, tf.float64)
    half = float(1 << (PRECISION_BITS - 1))
    scale = float(1 << PRECISION_BITS)

    def along_rows(x, window, weight, out):  # (n, m, c) -> (out, m, c)
        n, m, c = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        taps = tf.gather(tf.reshape(x, (n, m * c)), window)  # (blocks, L, m*c)
        sums = tf.matmul(weight, taps)  # (blocks, BLOCK, m*c), exact
        y = tf.clip_by_value(tf.floor((sums + half) / scale), 0.0, 255.0)
        return tf.reshape(tf.reshape(y, (-1, m * c))[:out], (out, m, c))

    def horizontal(x):  # (h, w, c) -> (h, out_w, c)
        return tf.transpose(along_rows(tf.transpose(x, [1, 0, 2]), hi, hw, out_w), [1, 0, 2])

    def vertical(x):  # (h, w, c) -> (out_h, w, c)
        return along_rows(x, vi, vw, out_h)

    def h_then_v():
        y = tf.cond(shape[1] != out_w, lambda: horizontal(x), lambda: x)
        return tf.cond(shape[0] != out_h, lambda: vertical(y), lambda: y)

    def v_then_h():
        y = tf.cond(shape[0] != out_h, lambda: vertical(x), lambda: x)
        return tf.cond(shape[1] != out_w, lambda: horizontal(y), lambda: y)

    if VERTICAL_FIRST_RULE:
        dh, dw = shape[0] - out_h, shape[1] - out_w
        x = tf.cond(tf.logical_and(dh > 0, dh > 2 * dw), v_then_h, h_then_v)
    else:
        x = h_then_v()
    return tf.cast(x, tf.uint8)


def _to_channels(image, channels: int, tf):
    """``L``/``RGB`` ``uint8`` (any of 1 or 3 channels) -> ``channels``, as Pillow's ``convert``."""
    have = tf.shape(image)[-1]
    if channels == 3:
        return tf.cond(have == 1, lambda: tf.tile(image, [1, 1, 3]), lambda: image)

    def luma():
        rgb = tf.cast(image, tf.int32)
        y = rgb[..., 0:1] * 19595 + rgb[..., 1:2] * 38470 + rgb[..., 2:3] * 7471 + 0x8000
        return tf.cast(tf.bitwise.right_shift(y, 16), tf.uint8)

    return tf.cond(have == 3, luma, lambda: image)


def _pillow_resize_array(image, out_h, out_w):
    """``uint8`` ``(h, w, 1|3)`` -> Pillow's ``resize((out_w, out_h), BILINEAR)`` of it (the
    device side's own call; Pillow releases the GIL while it resamples)."""
    from PIL import Image

    channels = image.shape[-1]
    img = Image.fromarray(image[..., 0] if channels == 1 else image)
    return np.asarray(img.resize((int(out_w), int(out_h)), Image.BILINEAR), dtype=np.uint8).reshape(
        int(out_h), int(out_w), channels
    )


def decode_resize(
    data, route, image_size, channels: int, tf=None, tables=None, resize: str | None = None, method: str = "antialias"
):
    """Encoded ``data`` (a JPEG or PNG that :func:`probe` routed to TensorFlow, ``route``
    its result) -> ``uint8`` ``(h, w, channels)``, the tensor ``load_image(..., method)`` gives.

    ``method`` ``"bilinear"``: TensorFlow's ``ResizeBilinear`` (half-pixel centres), rounded
    half to even, which :func:`edgecnn.device.preprocess.bilinear_resize` reproduces bit for bit.

    ``resize``: ``"pillow"`` (Pillow's C resampler on the TF-decoded array, in a
    ``numpy_function``) or ``"tf"`` (:func:`pillow_resize`, TensorFlow ops); both give the
    same bits; :data:`RESIZE` (the faster one measured on the reference machine) by default."""
    if tf is None:
        from edgecnn._tf import tf
    out_h, out_w = int(image_size[0]), int(image_size[1])
    image = tf.cond(
        tf.equal(route, JPEG),
        lambda: tf.io.decode_jpeg(data, channels=0, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(data, channels=0),
    )
    image = _to_channels(image, int(channels), tf)
    if method == "bilinear":
        out = tf.raw_ops.ResizeBilinear(
            images=image[None], size=[out_h, out_w], align_corners=False, half_pixel_centers=True
        )[0]
        out = tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)
    elif (resize or RESIZE) == "tf":
        out = pillow_resize(image, image_size, tf, tables)
    else:
        out = tf.numpy_function(
            _pillow_resize_array, [image, np.int32(out_h), np.int32(out_w)], tf.uint8, stateful=False
        )
    out.set_shape((out_h, out_w, int(channels)))
    return out


def _read_plan(path, image_size):
    """:func:`plan` of the file at ``path``, with its bytes; an unreadable file goes to Pillow
    (which reports it)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        data = b""
    return (np.asarray(data, dtype=object), *plan(data, image_size))


def read_image(source, image_size, channels: int, fallback, tf=None, path_of=None, resize=None, method="antialias"):
    """``(uint8 image, ok)`` of ``source``, encoded bytes (a string tensor) or, with
    ``path_of`` (a Python function of ``source``'s value, e.g. an index into a file list),
    the file ``path_of(source)``: through TensorFlow when :func:`probe` allows it, else
    ``fallback()`` (the Pillow path, returning ``(image, ok)``; it reports unreadable files).
    One ``numpy_function`` call (:func:`plan`, reading the file too with ``path_of``) per image."""
    if tf is None:
        from edgecnn._tf import tf
    shape = (int(image_size[0]), int(image_size[1]), int(channels))
    size = (int(image_size[0]), int(image_size[1]))
    types = [tf.int32, tf.int32, tf.float64, tf.int32, tf.float64]
    if path_of is not None:
        data, route, *tables = tf.numpy_function(
            lambda v: _read_plan(path_of(v), size), [source], [tf.string, *types], stateful=False
        )
        data = tf.reshape(data, ())
    else:
        data = source
        route, *tables = tf.numpy_function(lambda d: plan(d, size), [data], types, stateful=False)
    route = tf.reshape(route, ())

    def fast():
        return decode_resize(data, route, image_size, channels, tf, tables, resize, method), tf.constant(True)

    def slow():
        image, ok = fallback()
        return tf.reshape(image, shape), tf.reshape(ok, ())

    image, ok = tf.cond(tf.equal(route, PILLOW), slow, fast)
    image.set_shape(shape)
    ok.set_shape(())
    return image, ok
