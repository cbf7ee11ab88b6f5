"""The device side's image preprocessing in TensorFlow kernels, bit for bit.

:func:`edgecnn.device.preprocess.load_image` (Pillow) is the reference: decode, convert
to ``L``/``RGB``, then resize (``Image.resize(size, BILINEAR)``, or with ``"resize":
"bilinear"`` :func:`~edgecnn.device.preprocess.bilinear_resize`). Run inside
``tf.numpy_function`` it holds the GIL around every image; this module does the same work in
TensorFlow kernels and gives the same ``uint8`` tensor:

* **Decode.** JPEG with ``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`` (libjpeg's
  ``JDCT_ISLOW`` with fancy upsampling, what Pillow uses), PNG with ``tf.io.decode_png``:
  straight to 3 channels for an RGB model (the decoders replicate a grey file as Pillow's
  ``convert("RGB")`` does), at the file's own channel count for a grey one.
* **Colour.** Grey to RGB replicates; RGB to grey is Pillow's ``convert("L")``:
  ``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``.
* **Resize.** ``"antialias"``: Pillow's own C resampler on the decoded array (one
  ``numpy_function``; Pillow releases the GIL while it resamples). ``"bilinear"``:
  TensorFlow's ``ResizeBilinear`` kernel, rounded. (A TF-op replica of Pillow's resampler,
  exact but about 3 ms per 256->224 image against Pillow's 0.8, was tried and dropped.)

Files are routed by :func:`probe`, which reads the header bytes only: baseline/progressive
8-bit JPEGs with 1 or 3 components, and 8-bit grey/RGB PNGs without transparency, that
end where they should (``EOI``, ``IEND``) and declare at most
:data:`~edgecnn.device.preprocess.MAX_IMAGE_PIXELS` go through TensorFlow; everything else
(CMYK JPEGs, 12-bit or arithmetic-coded JPEGs, palette/alpha/16-bit PNGs, BMP, GIF,
truncated or corrupt files, files over the pixel limit) goes to the Pillow fallback, which
is the device side itself (and which skips and counts a file it cannot read). EXIF
orientation is ignored on both sides (the device does not transpose). A pipeline reads and
probes its files a batch at a time (:func:`read_batched`: one Python call per 64 files),
then decodes and resizes them in parallel.
"""

from __future__ import annotations

import struct

import numpy as np

from edgecnn.device.preprocess import MAX_IMAGE_PIXELS

#: :func:`probe` results.
PILLOW, JPEG, PNG = 0, 1, 2
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


def decode_resize(data, route, image_size, channels: int, tf=None, method: str = "antialias", as_float=False):
    """Encoded ``data`` (a JPEG or PNG that :func:`probe` routed to TensorFlow, ``route``
    its result) -> ``uint8`` ``(h, w, channels)``, the tensor ``load_image(..., method)`` gives.

    ``method`` ``"antialias"``: Pillow's own resampler on the TF-decoded array (a
    ``numpy_function``; Pillow releases the GIL while it resamples). ``"bilinear"``:
    TensorFlow's ``ResizeBilinear`` (half-pixel centres) rounded half to even, which
    :func:`edgecnn.device.preprocess.bilinear_resize` reproduces bit for bit. ``as_float``:
    the same values as ``float32`` (bilinear: the rounded resize itself, which lies in
    0..255 already, so no clip and no round trip through ``uint8``)."""
    if tf is None:
        from edgecnn._tf import tf
    out_h, out_w = int(image_size[0]), int(image_size[1])
    # For RGB, the decoders replicate a grey file's channel as Pillow's convert("RGB") does;
    # grey output needs Pillow's own RGB -> L formula (libjpeg would take the Y channel).
    want = 3 if int(channels) == 3 else 0
    image = tf.cond(
        tf.equal(route, JPEG),
        lambda: tf.io.decode_jpeg(data, channels=want, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(data, channels=want),
    )
    if want == 0:
        image = _to_channels(image, int(channels), tf)
    if method == "bilinear":
        out = tf.raw_ops.ResizeBilinear(
            images=image[None], size=[out_h, out_w], align_corners=False, half_pixel_centers=True
        )[0]
        # Interpolating between values in 0..255 stays in 0..255 in float32 too (tl + (tr - tl) * dx
        # rounds to at most tr): the clip only guards the cast.
        out = tf.round(out) if as_float else tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)
    else:
        out = tf.numpy_function(
            _pillow_resize_array, [image, np.int32(out_h), np.int32(out_w)], tf.uint8, stateful=False
        )
        out = tf.cast(out, tf.float32) if as_float else out
    out.set_shape((out_h, out_w, int(channels)))
    return out


def routed(data, route, image_size, channels: int, fallback, tf=None, method: str = "antialias", as_float=False):
    """``(uint8 image, ok)`` (``as_float``: its values as ``float32``) of encoded ``data`` whose
    :func:`probe` result is ``route``:
    :func:`decode_resize` in TensorFlow kernels, or ``fallback()`` (the device side's
    ``load_image`` in a ``numpy_function``, returning ``(image, ok)``; it reports unreadable
    files) for :data:`PILLOW`."""
    if tf is None:
        from edgecnn._tf import tf
    shape = (int(image_size[0]), int(image_size[1]), int(channels))

    def fast():
        return decode_resize(data, route, image_size, channels, tf, method, as_float), tf.constant(True)

    def slow():
        image, ok = fallback()
        image = tf.reshape(image, shape)
        return tf.cast(image, tf.float32) if as_float else image, tf.reshape(ok, ())

    image, ok = tf.cond(tf.equal(route, PILLOW), slow, fast)
    image.set_shape(shape)
    ok.set_shape(())
    return image, ok


def _read(path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""  # unreadable: routed to Pillow, which reports it


def plan_files(paths) -> tuple[np.ndarray, np.ndarray]:
    """The bytes and :func:`probe` routes of several files in one Python call (what one
    ``numpy_function`` per batch of files runs, instead of one per image)."""
    datas = [_read(p) for p in paths]
    return np.asarray(datas + [b""], dtype=object)[:-1], np.asarray([probe(d) for d in datas], dtype=np.int32)


def plan_bytes(datas) -> np.ndarray:
    """:func:`probe` routes of several encoded images in one Python call."""
    return np.asarray([probe(bytes(d)) for d in datas], dtype=np.int32)


class _Drops:
    """Which planned items a pass over a pipeline dropped because TensorFlow's decoder raised
    on them (a file the header check let through, with corrupt entropy data).

    Items are numbered per pass (a ``scan``, so every iterator starts at 0) as they are
    planned, and come out of ``ignore_errors`` in order (every map before it is
    deterministic). A ``scan`` after it compares each number with the previous one: only a
    jump (numbers passed over: dropped) or the end of the pass calls Python. A pass abandoned
    midway (``take``) reports nothing for its tail."""

    def __init__(self, name_of, on_drop):
        import threading

        self.name_of, self.on_drop = name_of, on_drop
        self.planned: dict = {}
        self.lock = threading.Lock()

    def plan(self, start, key, *rest) -> np.ndarray:
        start = int(start)
        with self.lock:
            if start == 0:  # a new pass: what an abandoned one left planned is forgotten
                self.planned.clear()
            for i, values in enumerate(zip(key, *rest)):
                self.planned[start + i] = values
        return np.arange(start, start + len(key), dtype=np.int64)

    def jump(self, last, seq) -> np.int64:
        """Item ``seq`` came out right after ``last``; ``seq`` -1: the pass ended after ``last``."""
        last, seq = int(last), int(seq)
        with self.lock:
            gone = [s for s in self.planned if s > last and (seq < 0 or s < seq)]
            names = [self.name_of(*self.planned[s]) for s in sorted(gone)]
            for s in [s for s in self.planned if seq < 0 or s <= seq]:
                del self.planned[s]
        for name in names:
            self.on_drop(name)
        return np.int64(seq)


def read_batched(
    keys,
    image_size,
    channels: int,
    fallback,
    tf=None,
    path_of=None,
    method: str = "antialias",
    then=None,
    name_of=None,
    on_drop=None,
    plan_batch: int = 64,
):
    """``keys`` (a dataset of ``(key, *rest)``) -> ``(image, ok, key, *rest)``: the files
    ``path_of(keys)`` (a numpy array of keys -> their paths) or, without ``path_of``, the
    encoded bytes ``key`` itself, read and probed ``plan_batch`` at a time in one
    ``numpy_function``, then decoded and resized in parallel by :func:`routed`
    (``fallback(key, data, *rest)``: the Pillow path) to ``uint8``, and ``then(image)`` (e.g.
    the normalisation; it gets the pixel values as ``float32``) in the same step. Order is
    kept; items with ``ok`` False (unreadable files, and one marker at the end of each pass)
    are for the caller to filter out.

    A file the header check lets through but TensorFlow's decoder refuses (corrupt entropy
    data) is dropped, never an error mid-epoch: ``on_drop(name_of(key, *rest))`` is called
    for it (``name_of`` gets numpy values) as the pipeline passes it."""
    if tf is None:
        from edgecnn._tf import tf
    drops = _Drops(name_of or (lambda key, *rest: str(key)), on_drop or (lambda name: None))

    def plan_py(start, key, *rest):
        if path_of is not None:
            data, route = plan_files(path_of(key))
        else:
            data, route = key, plan_bytes(key)
        return data, route, drops.plan(start, key, *rest)

    def count(start, batch):
        return start + tf.cast(tf.shape(batch[0])[0], tf.int64), (start, batch)

    def plan(start, batch):
        data, route, seq = tf.numpy_function(plan_py, [start, *batch], [tf.string, tf.int32, tf.int64])
        for t in (data, route, seq):
            t.set_shape([None])
        return (data, route, seq, *batch)

    def read(data, route, seq, key, *rest):
        as_float = then is not None
        image, ok = routed(data, route, image_size, channels, lambda: fallback(key, data, *rest), tf, method, as_float)
        return (then(image) if as_float else image, ok, seq, key, *rest)

    def note(last, item):  # Python only when numbers were passed over, and at the end of a pass
        image, ok, seq, *rest = item
        jumped = tf.logical_or(tf.not_equal(seq, last + 1), seq < 0)
        noted = tf.cond(jumped, lambda: tf.numpy_function(drops.jump, [last, seq], tf.int64), lambda: seq)
        with tf.control_dependencies([noted]):
            return seq, (tf.identity(image), ok, *rest)

    batched = keys.map(lambda *item: item).batch(plan_batch).scan(tf.constant(0, tf.int64), count)
    decoded = batched.map(plan).unbatch().map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    decoded = decoded.ignore_errors()
    image_spec = decoded.element_spec[0]

    def end_of_pass(*item):  # one marker after the last item (made from the source, not from tensors)
        return (tf.zeros(image_spec.shape, image_spec.dtype), tf.constant(False), tf.constant(-1, tf.int64), *item)

    passed = decoded.concatenate(keys.take(1).map(end_of_pass))
    return passed.scan(tf.constant(-1, tf.int64), note)


def read_image(source, image_size, channels: int, fallback, tf=None, path_of=None, method="antialias"):
    """``(uint8 image, ok)`` of one ``source``, encoded bytes (a string tensor) or, with
    ``path_of`` (a Python function of ``source``'s value), the file ``path_of(source)``:
    through TensorFlow when :func:`probe` allows it, else ``fallback()``. One
    ``numpy_function`` per image; pipelines use :func:`read_batched`."""
    if tf is None:
        from edgecnn._tf import tf
    if path_of is not None:
        data, route = tf.numpy_function(
            lambda v: tuple(a[0] for a in plan_files([path_of(v)])), [source], [tf.string, tf.int32], stateful=False
        )
    else:
        data = source
        route = tf.numpy_function(lambda d: plan_bytes([d])[0], [data], tf.int32, stateful=False)
    data, route = tf.reshape(data, ()), tf.reshape(route, ())
    return routed(data, route, image_size, channels, fallback, tf, method)
