"""The device side's image preprocessing in TensorFlow kernels, bit for bit.

:func:`edgecnn.device.preprocess.load_image` (Pillow) is the reference: decode, convert
to ``L``/``RGB``, then resize (``Image.resize(size, BILINEAR)``, or with ``"resize":
"bilinear"`` :func:`~edgecnn.device.preprocess.bilinear_resize`). Run inside
``tf.numpy_function`` it holds the GIL around every image; this module does the same work in
TensorFlow kernels and gives the same ``uint8`` tensor:

* **Decode.** One decoder for JPEG and PNG, with no branch per image:
  ``tf.io.decode_jpeg(channels=3, dct_method="INTEGER_ACCURATE")`` (libjpeg's ``JDCT_ISLOW``
  with fancy upsampling, what Pillow uses; TensorFlow's JPEG op decodes PNGs too, as
  documented), always to 3 channels (a grey file replicated, as Pillow's
  ``convert("RGB")`` does).
* **Colour.** A grey model takes Pillow's ``convert("L")`` of that:
  ``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``, which gives a grey file its own values.
* **Resize.** ``"antialias"``: Pillow's own C resampler on the decoded array (one
  ``numpy_function``; Pillow releases the GIL while it resamples). ``"bilinear"``:
  TensorFlow's ``ResizeBilinear`` kernel, rounded. (A TF-op replica of Pillow's resampler,
  exact but about 3 ms per 256->224 image against Pillow's 0.8, was tried and dropped.)

Files are routed by :func:`probe`, which reads the header bytes only: baseline/progressive
8-bit JPEGs with 1 or 3 components, and 8-bit grey/RGB PNGs without transparency, that
end where they should (``EOI``, ``IEND``) and declare at most
:data:`~edgecnn.device.preprocess.MAX_IMAGE_PIXELS` go through TensorFlow; everything else
(CMYK JPEGs, 12-bit or arithmetic-coded JPEGs, palette/alpha/16-bit PNGs, BMP, GIF,
truncated or corrupt files, files over the pixel limit) is read by the device side itself
(``load_image``, which skips and counts a file it cannot read) when the file is planned
(:func:`plan`), and its pixels go on as an uncompressed PNG at the final size, which the
decoder and a same-size resize give back unchanged. EXIF orientation is ignored on both
sides (the device does not transpose). A pipeline reads and probes its files a batch at a
time (:func:`read_batched`: one Python call per 64 files, several in parallel), then
decodes and resizes them in parallel.
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


def _luma(image, tf):
    """``RGB`` ``uint8`` -> ``L``, Pillow's ``convert("L")``: ``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``
    (a grey file decoded to 3 equal channels comes back unchanged: the weights sum to 65536)."""
    rgb = tf.cast(image, tf.int32)
    y = rgb[..., 0:1] * 19595 + rgb[..., 1:2] * 38470 + rgb[..., 2:3] * 7471 + 0x8000
    return tf.cast(tf.bitwise.right_shift(y, 16), tf.uint8)


def _pillow_resize_array(image, out_h, out_w):
    """``uint8`` ``(h, w, 1|3)`` -> Pillow's ``resize((out_w, out_h), BILINEAR)`` of it (the
    device side's own call; Pillow releases the GIL while it resamples)."""
    from PIL import Image

    channels = image.shape[-1]
    img = Image.fromarray(image[..., 0] if channels == 1 else image)
    return np.asarray(img.resize((int(out_w), int(out_h)), Image.BILINEAR), dtype=np.uint8).reshape(
        int(out_h), int(out_w), channels
    )


def decode_resize(data, image_size, channels: int, tf=None, method: str = "antialias", as_float=False):
    """Encoded ``data`` (a JPEG or PNG that :func:`probe` routed to TensorFlow, or what
    :func:`plan` put in place of a file it read with Pillow) -> ``uint8`` ``(h, w, channels)``,
    the tensor ``load_image(..., method)`` gives.

    One decoder for both formats and no branch: TensorFlow's ``decode_jpeg`` decodes PNGs
    too (documented), and the DCT method only concerns JPEGs. It decodes to 3 channels (a grey
    file replicated, as Pillow's ``convert("RGB")`` does); a grey model then takes Pillow's
    ``convert("L")`` (:func:`_luma`, which gives a grey file its own values back).

    ``method`` ``"antialias"``: Pillow's own resampler on the TF-decoded array (a
    ``numpy_function``; Pillow releases the GIL while it resamples). ``"bilinear"``:
    TensorFlow's ``ResizeBilinear`` (half-pixel centres) rounded half to even, which
    :func:`edgecnn.device.preprocess.bilinear_resize` reproduces bit for bit. ``as_float``:
    the same values as ``float32`` (bilinear: the rounded resize itself, which lies in
    0..255 already, so no clip and no round trip through ``uint8``)."""
    if tf is None:
        from edgecnn._tf import tf
    out_h, out_w = int(image_size[0]), int(image_size[1])
    image = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
    if int(channels) == 1:
        image = _luma(image, tf)
    if method == "bilinear":
        # The kernel converts every uint8 it reads to float32; given float32 it runs about 1.4x as
        # fast here (0.25 vs 0.35 ms per 256->224 image, the cast included), with the same bits.
        out = tf.raw_ops.ResizeBilinear(
            images=tf.cast(image, tf.float32)[None], size=[out_h, out_w], align_corners=False, half_pixel_centers=True
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


def _read(path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""  # unreadable: routed to Pillow, which reports it


def as_png(image: np.ndarray) -> bytes:
    """A ``uint8`` ``(h, w, 1|3)`` image as an uncompressed PNG, which :func:`decode_resize`
    gives back exactly (a resize to its own size is the identity on both resamplers)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def plan(data: bytes, fallback, store=None):
    """What :func:`decode_resize` should be given for the encoded image ``data``:
    ``(encoded, raw)``, or ``None`` for an unreadable file. A file :func:`probe` routes to
    TensorFlow goes as it is; any other goes to ``fallback()`` (the device side's
    ``load_image``, here, in Python, at the final size; ``None`` for an unreadable file, which
    it reports). Its image goes on as a PNG (:func:`as_png`), or, with ``store`` (a disk
    cache's ``put``), is stored and goes on as its raw ``uint8`` bytes (``raw`` True)."""
    if probe(data) != PILLOW:
        return data, False
    image = fallback()
    if image is None:
        return None
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if store is None:
        return as_png(image), False
    store(image)
    return image.tobytes(), True


class _Drops:
    """Which planned items a pass over a pipeline dropped because TensorFlow's decoder raised
    on them (a file the header check let through, with corrupt entropy data).

    Items are numbered per pass (a ``scan``, so every iterator starts at 0) and registered in
    order, a batch at a time, before they are read; they come out of ``ignore_errors`` in
    order (every map before it is deterministic). A ``scan`` after it compares each number
    with the previous one: only a jump (numbers passed over: dropped) or the end of the pass
    calls Python. An item the Pillow fallback found unreadable is reported by the fallback and
    forgotten here. A pass abandoned midway (``take``) reports nothing for its tail."""

    def __init__(self, name_of, on_drop):
        import threading

        self.name_of, self.on_drop = name_of, on_drop
        self.planned: dict = {}
        self.lock = threading.Lock()

    def register(self, start, key, *rest) -> np.ndarray:
        start = int(start)
        with self.lock:
            if start == 0:  # a new pass: what an abandoned one left planned is forgotten
                self.planned.clear()
            for i, values in enumerate(zip(key, *rest)):
                self.planned[start + i] = values
        return np.arange(start, start + len(key), dtype=np.int64)

    def forget(self, seqs) -> None:
        with self.lock:
            for s in seqs:
                self.planned.pop(int(s), None)

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
    cache=None,
):
    """``keys`` (a dataset of ``(key, *rest)``) -> ``(image, key, *rest)`` for every readable
    one, in order: the files ``path_of(keys)`` (a numpy array of keys -> their paths) or,
    without ``path_of``, the encoded bytes ``key`` itself, read and probed ``plan_batch`` at
    a time in one ``numpy_function`` (several batches in parallel; :func:`plan`), then decoded
    and resized in parallel by :func:`decode_resize` to ``uint8``, and ``then(image)`` (e.g.
    the normalisation; it gets the pixel values as ``float32``) in the same step.

    ``fallback(key, data, *rest)`` (Python, numpy values) is the device side's reader for a
    file the header check does not send to TensorFlow: the ``uint8`` image at the final size,
    or ``None`` for an unreadable file (which it reports itself). A file the header check lets
    through but TensorFlow's decoder refuses (corrupt entropy data) is dropped, never an error
    mid-epoch: ``on_drop(name_of(key, *rest))`` is called for it (``name_of`` gets numpy
    values) as the pipeline passes it.

    ``cache``: an object with ``lookup(key)`` (the ``uint8`` image's bytes, or ``None``) and
    ``put(key, image)`` (e.g. the stream's disk cache): a stored image is read back instead of
    decoded, and a decoded one is stored as it passes (the first epoch decodes with
    TensorFlow's kernels, the later ones read the cache)."""
    if tf is None:
        from edgecnn._tf import tf
    drops = _Drops(name_of or (lambda key, *rest: str(key)), on_drop or (lambda name: None))
    specs = tf.nest.flatten(keys.element_spec)
    shape = (int(image_size[0]), int(image_size[1]), int(channels))

    def plan_py(seq, key, *rest):
        paths = path_of(key) if path_of is not None else None
        kept, encoded, raw = [], [], []
        for i, k in enumerate(key):
            item = None if cache is None else cache.lookup(k)
            if item is not None:  # stored pixels
                item = item, True
            else:
                data = _read(paths[i]) if paths is not None else bytes(k)
                store = None if cache is None else (lambda image, k=k: cache.put(k, image))
                item = plan(data, lambda k=k, data=data, i=i: fallback(k, data, *(r[i] for r in rest)), store)
                if item is None:
                    continue
            kept.append(i)
            encoded.append(item[0])
            raw.append(item[1])
        if len(kept) < len(key):
            drops.forget(np.delete(seq, kept))
        kept = np.asarray(kept, dtype=np.int64)
        encoded = np.asarray(encoded + [b""], dtype=object)[:-1]
        return (encoded, seq[kept], np.asarray(raw, dtype=bool), key[kept], *(r[kept] for r in rest))

    def count(start, batch):  # numbers each item of the pass and registers it, in order
        seq = tf.numpy_function(drops.register, [start, *batch], tf.int64)
        return start + tf.cast(tf.shape(batch[0])[0], tf.int64), (seq, *batch)

    def read_plan(seq, *batch):
        out = tf.numpy_function(plan_py, [seq, *batch], [tf.string, tf.int64, tf.bool, *(s.dtype for s in specs)])
        for t, s in zip(out, [None, None, None, *specs]):
            t.set_shape([None] + ([] if s is None else s.shape.as_list()))
        return tuple(out)

    def put(key, image):
        cache.put(key, image)
        return image

    def read(data, seq, stored, key, *rest):
        if cache is None:
            image = decode_resize(data, image_size, channels, tf, method, as_float=then is not None)
        else:

            def decoded():
                fresh = decode_resize(data, image_size, channels, tf, method)
                return tf.numpy_function(put, [key, fresh], tf.uint8)

            image = tf.cond(stored, lambda: tf.reshape(tf.io.decode_raw(data, tf.uint8), shape), decoded)
            image.set_shape(shape)
            image = image if then is None else tf.cast(image, tf.float32)
        return (image if then is None else then(image), seq, key, *rest)

    batched = keys.map(lambda *item: item).batch(plan_batch).scan(tf.constant(0, tf.int64), count)
    planned = batched.map(read_plan, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    decoded = planned.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    image_spec = decoded.element_spec[0]

    def end_of_pass(*item):  # one marker after the last item (made from the source, not from tensors)
        return (tf.zeros(image_spec.shape, image_spec.dtype), tf.constant(-1, tf.int64), *item)

    def note(last, item):  # Python only when numbers were passed over, and at the end of a pass
        image, seq, *rest = item
        jumped = tf.logical_or(tf.not_equal(seq, last + 1), seq < 0)
        noted = tf.cond(jumped, lambda: tf.numpy_function(drops.jump, [last, seq], tf.int64), lambda: seq)
        with tf.control_dependencies([noted]):
            return seq, (tf.identity(image), seq, *rest)

    passed = decoded.concatenate(keys.take(1).map(end_of_pass)).scan(tf.constant(-1, tf.int64), note)
    return passed.filter(lambda image, seq, *rest: seq >= 0).map(lambda image, seq, *rest: (image, *rest))


def read_image(source, image_size, channels: int, fallback, tf=None, path_of=None, method="antialias"):
    """``(uint8 image, ok)`` of one ``source``, encoded bytes (a string tensor) or, with
    ``path_of`` (a Python function of ``source``'s value), the file ``path_of(source)``:
    through TensorFlow when :func:`probe` allows it, else ``fallback(data)`` (Python: the
    image, or ``None`` when unreadable: ``ok`` False). One ``numpy_function`` per image;
    pipelines use :func:`read_batched`."""
    if tf is None:
        from edgecnn._tf import tf

    def plan_one(value):
        data = _read(path_of(value)) if path_of is not None else bytes(value)
        item = plan(data, lambda: fallback(data))
        return (item[0], True) if item is not None else (b"", False)

    data, ok = tf.numpy_function(plan_one, [source], [tf.string, tf.bool], stateful=False)
    data, ok = tf.reshape(data, ()), tf.reshape(ok, ())
    shape = (int(image_size[0]), int(image_size[1]), int(channels))
    image = tf.cond(
        ok, lambda: decode_resize(data, image_size, channels, tf, method), lambda: tf.zeros(shape, tf.uint8)
    )
    image.set_shape(shape)
    return image, ok
