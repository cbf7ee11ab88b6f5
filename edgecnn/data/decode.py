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
decodes and resizes them in parallel; an image folder's files are probed once, when its
pipeline is built (:func:`probe_file`: the headers and the last bytes only), and read with
no Python per file (:func:`read_files`).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from edgecnn.device.preprocess import MAX_IMAGE_PIXELS, ImageError

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


def probe_size(data: bytes, tail: bytes | None = None):
    """``(route, height, width)``: :func:`probe`'s answer and the size the header declares
    (``0, 0`` for :data:`PILLOW`). With ``tail``, ``data`` is only the file's first bytes and
    ``tail`` its last 12: ``None`` when the headers run on past ``data`` (read it all)."""
    if data[:3] == b"\xff\xd8\xff":
        return _probe_jpeg(data, tail)
    if data[:8] == _PNG_SIGNATURE:
        return _probe_png(data, tail)
    return _NO


def probe_file(path, head: int = 1 << 16) -> int:
    """:func:`probe` of the file ``path``, reading its first ``head`` bytes and its last 12
    only (all of it when its headers run on past ``head``); an unreadable file: :data:`PILLOW`
    (the device side's reader reports it)."""
    try:
        with open(path, "rb") as f:
            data = f.read(head)
            if len(data) < head:  # the whole file
                return probe(data)
            f.seek(-12, os.SEEK_END)
            answer = probe_size(data, f.read(12))
            if answer is None:
                f.seek(0)
                answer = probe_size(f.read())
    except OSError:
        return PILLOW
    return answer[0]


def _probe_jpeg(data: bytes, tail: bytes | None = None):
    n = len(data)
    if not (data if tail is None else tail).endswith(b"\xff\xd9"):  # truncated (or trailing bytes): Pillow decides
        return _NO
    more = _NO if tail is None else None  # what running out of ``data`` means
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
                return more
            precision, height, width, components = struct.unpack(">BHHB", data[pos + 4 : pos + 10])
            ok = precision == 8 and components in (1, 3) and 0 < width * height <= MAX_IMAGE_PIXELS
            return (JPEG, height, width) if ok else _NO
        if marker in _SOF_OTHER:
            return _NO
        pos += 2 + length
    return more


def _probe_png(data: bytes, tail: bytes | None = None):
    if len(data) < 45 and tail is not None:
        return None
    if len(data) < 45 or data[12:16] != b"IHDR" or not (data if tail is None else tail).endswith(_PNG_IEND):
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
    return _NO if tail is None else None


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


def read_bytes(path) -> bytes:
    """The file's bytes; ``b""`` when it cannot be read (Pillow then reports it)."""
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

    Items are numbered per pass (a ``scan``, so every iterator starts afresh) and registered in
    order, a batch at a time, before they are read; they come out of ``ignore_errors`` in
    order (every map before it is deterministic). A ``scan`` after it compares each number
    with the previous one: only a jump (numbers passed over: dropped), every 4,096 items (what
    came out is forgotten, so the register stays short) and the end of the pass call Python
    (a batched reader checks a batch at a time: :func:`read_files`). An item the Pillow
    fallback found unreadable is reported by the fallback and forgotten here. A pass abandoned
    midway (``take``) reports nothing for its tail.

    A number carries its pass (``pass << 40 | position``), and each pass has its own register:
    an abandoned iterator still reading ahead never touches a later pass's items. The registers
    of the last :attr:`KEEP` passes are kept."""

    SHIFT, KEEP = 40, 4

    def __init__(self, name_of, on_drop):
        import threading

        self.name_of, self.on_drop = name_of, on_drop
        self.passes: dict = {}  # pass -> {number: the item's values}
        self.latest = 0
        self.lock = threading.Lock()

    def register(self, start, key, *rest) -> np.ndarray:
        """Numbers for the next ``len(key)`` items of the pass whose next number is ``start``
        (0: a new pass)."""
        start = int(start)
        with self.lock:
            if start == 0:
                self.latest += 1
                start = self.latest << self.SHIFT
                self.passes[self.latest] = {}
                for old in [p for p in self.passes if p <= self.latest - self.KEEP]:
                    del self.passes[old]
            planned = self.passes.setdefault(start >> self.SHIFT, {})
            for i, values in enumerate(zip(key, *rest)):
                planned[start + i] = values
        return np.arange(start, start + len(key), dtype=np.int64)

    def _planned(self, *numbers) -> dict:
        """The register of the pass of the first of ``numbers`` that is one (``-1`` is none)."""
        known = [n for n in numbers if n >= 0]
        return self.passes.get((known[0] >> self.SHIFT) if known else self.latest, {})

    def forget(self, seqs) -> None:
        with self.lock:
            for s in seqs:
                self._planned(int(s)).pop(int(s), None)

    def lost(self, last, seqs) -> list:
        """A batch ``seqs`` (in order; ``[-1]``: the pass ended) came out after item ``last``
        (every item up to ``last`` came out; -1: none yet): the registered items after
        ``last`` and before the end of ``seqs`` that are not among them, as
        ``(seq, values)``, are returned (lost with a batch that raised) and, with everything
        up to there, forgotten."""
        last, seqs = int(last), [int(s) for s in seqs]
        end = max(seqs) if seqs and seqs[0] >= 0 else None
        came = set(seqs)
        with self.lock:
            planned = self._planned(*seqs, last)
            done = sorted(s for s in planned if end is None or s <= end)
            lost = [(s, planned[s]) for s in done if s > last and s not in came]
            for s in done:
                del planned[s]
        return lost

    def jump(self, last, seq) -> np.int64:
        """Item ``seq`` came out right after ``last`` (``seq`` -1: the pass ended after
        ``last``): the items between them were dropped, and are named."""
        for _, values in self.lost(last, [seq]):
            self.on_drop(self.name_of(*values))
        return np.int64(seq)


def _numbered(keys, drops: _Drops, batch: int, tf):
    """``keys`` -> batches of ``(seq, key, *rest)``: each item numbered in its pass (a
    ``scan``, so every iterator starts afresh) and registered with ``drops`` before it is read."""

    def count(start, items):
        seq = tf.ensure_shape(tf.numpy_function(drops.register, [start, *items], tf.int64), [None])
        return seq[-1] + 1, (seq, *items)

    return keys.map(lambda *item: item).batch(batch).scan(tf.constant(0, tf.int64), count)


def _passed(decoded, keys, drops: _Drops, tf):
    """``decoded`` items ``(image, seq, *rest)`` -> ``(image, *rest)``, those whose read raised
    left out (``ignore_errors``) and named through ``drops`` as the pass goes by them."""
    decoded = decoded.ignore_errors()
    image_spec = decoded.element_spec[0]
    added = decoded.element_spec[2 + len(tf.nest.flatten(keys.element_spec)) :]  # what the read added

    def end_of_pass(*item):  # one marker after the last item (made from the source, not from tensors)
        marker = (tf.zeros(image_spec.shape, image_spec.dtype), tf.constant(-1, tf.int64), *item)
        return (*marker, *(tf.zeros(s.shape, s.dtype) for s in added))

    def note(last, item):  # Python where numbers were passed over, every 4,096 items (the register), at the end
        image, seq, *rest = item
        jumped = tf.logical_or(tf.not_equal(seq, last + 1), seq < 0)
        jumped = tf.logical_or(jumped, tf.not_equal(seq // 4096, last // 4096))
        noted = tf.cond(jumped, lambda: tf.numpy_function(drops.jump, [last, seq], tf.int64), lambda: seq)
        with tf.control_dependencies([noted]):
            return seq, (tf.identity(image), seq, *rest)

    passed = decoded.concatenate(keys.take(1).map(end_of_pass)).scan(tf.constant(-1, tf.int64), note)
    return passed.filter(lambda image, seq, *rest: seq >= 0).map(lambda image, seq, *rest: (image, *rest))


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
                data = read_bytes(paths[i]) if paths is not None else bytes(k)
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

    numbered = _numbered(keys, drops, plan_batch, tf)
    planned = numbered.map(read_plan, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    decoded = planned.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _passed(decoded, keys, drops, tf)


def read_files(
    keys,
    paths,
    routes,
    image_size,
    channels: int,
    fallback,
    tf=None,
    method: str = "antialias",
    then=None,
    extra=None,
    name_of=None,
    on_drop=None,
    batch=None,
):
    """``keys`` (a dataset of ``(key, *rest)``, ``key`` an index into ``paths``) ->
    ``(image, key, *rest, *extra(key))`` for every readable file, in order: what
    :func:`read_batched` gives, for files whose :func:`probe` is known beforehand (``routes``:
    ``routes[key]`` is 1 where TensorFlow decodes the file exactly as Pillow does
    (:func:`probe_file`), 0 where it does not, -1 for a file that is not to be read). Each
    file is read, decoded, resized and passed to ``then(image, key, *rest)`` (the image as
    ``float32``; e.g. normalisation and augmentation) by TensorFlow in one parallel step, with
    no Python per file; ``extra(key)`` (e.g. the label, a tensor or a tuple of them) is
    computed in the same step. A file routed to Pillow goes to ``fallback(key, *rest)``
    (Python, numpy values: the ``uint8`` image at the final size, or ``None`` for an
    unreadable file, which it reports); only a pipeline that has such files branches per item.

    Item by item (``batch`` None), a file TensorFlow's decoder refuses is dropped and named
    as :func:`read_batched` does. With ``batch``, the items come in batches of ``batch``
    (the read and the batching fuse, and nothing runs per item after the read): a read that
    raises loses its whole batch inside ``tf.data``, so the lost batch's items are read
    again, one by one, by ``fallback`` (the device side's reader, which decodes exactly as
    TensorFlow does where TensorFlow succeeds) and go out ahead of the next batch; the items
    and their order are the item-by-item pipeline's, and ``fallback`` reports the refused
    file. Python runs once per 4,096 items, where a batch was lost, and at the end of a pass."""
    if tf is None:
        from edgecnn._tf import tf
    drops = _Drops(name_of or (lambda key, *rest: str(key)), on_drop or (lambda name: None))
    shape = (int(image_size[0]), int(image_size[1]), int(channels))
    paths_t = tf.constant([os.fsencode(p) for p in paths], tf.string)  # the file system's own bytes
    routes = np.asarray(routes, dtype=np.int8)
    read_by_tf = routes[routes >= 0] == 1
    routes_t = tf.constant(routes == 1)
    as_float = then is not None

    def pillow(key, *rest):
        image = fallback(key, *rest)
        if image is None:  # reported by the fallback; the error drops the item
            raise ImageError(f"unreadable: {key}")
        return np.ascontiguousarray(image, dtype=np.uint8)

    def finish_item(image, key, *rest):  # ``then`` and ``extra``, for one item
        more = () if extra is None else extra(key)
        more = tuple(more) if isinstance(more, (tuple, list)) else (more,)
        return (image if then is None else then(image, key, *rest), *more)

    def read(seq, key, *rest):
        def decoded():
            return decode_resize(tf.io.read_file(tf.gather(paths_t, key)), image_size, channels, tf, method, as_float)

        def by_pillow():
            image = tf.numpy_function(pillow, [key, *rest], tf.uint8, stateful=False)
            image = tf.ensure_shape(image, shape)
            return tf.cast(image, tf.float32) if as_float else image

        if read_by_tf.all():
            image = decoded()
        elif not read_by_tf.any():
            image = by_pillow()
        else:
            image = tf.cond(tf.gather(routes_t, key), decoded, by_pillow)
        image.set_shape(shape)
        image, *more = finish_item(image, key, *rest)
        return (image, seq, key, *rest, *more)

    items = _numbered(keys, drops, 64, tf).unbatch().map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if batch is None:
        return _passed(items, keys, drops, tf)
    specs = items.element_spec
    key_specs = specs[2 : 2 + len(tf.nest.flatten(keys.element_spec))]
    item_specs = (specs[0], *specs[2 + len(key_specs) :])  # what finish_item gives

    def recover(last, seqs):  # Python: the items lost with a batch that raised, read by ``fallback``
        images, kept = [], []
        for seq, values in drops.lost(last, seqs):
            image = fallback(*values)
            if image is None:  # the fallback reported it
                drops.on_drop(drops.name_of(*values))
                continue
            images.append(np.ascontiguousarray(image, dtype=np.uint8))
            kept.append((seq, values))
        columns = [np.asarray([v[j] for _, v in kept], dtype=s.dtype.as_numpy_dtype) for j, s in enumerate(key_specs)]
        images = np.stack(images) if images else np.zeros((0, *shape), np.uint8)
        return (images, np.asarray([s for s, _ in kept], dtype=np.int64), *columns)

    def end_of_pass(*item):  # one marker batch after the last (made from the source, not from tensors)
        zeros = [tf.zeros([1, *s.shape], s.dtype) for s in item_specs]
        return (zeros[0], tf.constant([-1], tf.int64), *(t[None] for t in item), *zeros[1:])

    def noted(last, batch_items):
        """Python only when a batch raised (its items are read again, one by one, by the
        fallback and go out with the next batch), every 4,096 items (to keep the registry
        short) and at the end of the pass."""
        image, seq, *rest = batch_items
        gap = tf.reduce_any(tf.not_equal(seq, last + 1 + tf.range(tf.size(seq, tf.int64))))
        call = tf.logical_or(gap, tf.not_equal(tf.reduce_max(seq) // 4096, last // 4096))

        def with_recovered():
            got = tf.numpy_function(recover, [last, seq], [tf.uint8, tf.int64, *(s.dtype for s in key_specs)])
            fresh, fresh_seq, *fresh_keys = got
            fresh = tf.ensure_shape(fresh, (None, *shape))
            fresh = tf.cast(fresh, tf.float32) if as_float else fresh
            fresh_seq = tf.ensure_shape(fresh_seq, (None,))
            fresh_keys = [tf.ensure_shape(t, (None, *s.shape)) for t, s in zip(fresh_keys, key_specs)]
            done = tf.map_fn(
                lambda item: finish_item(*item), (fresh, *fresh_keys), fn_output_signature=item_specs
            )
            keep = seq >= 0  # the end marker goes
            parts = [(done[0], image), (fresh_seq, seq), *zip(fresh_keys, rest[: len(key_specs)])]
            parts += list(zip(done[1:], rest[len(key_specs) :]))
            out = [tf.concat([a, tf.boolean_mask(b, keep)], 0) for a, b in parts]
            return (out[0], out[1], *out[2:])

        out = tf.cond(call, with_recovered, lambda: (image, seq, *rest))
        return tf.maximum(last, tf.reduce_max(seq)), out

    batches = items.batch(batch).ignore_errors()  # map and batch fuse: a read that raises loses its batch
    passed = batches.concatenate(keys.take(1).map(end_of_pass)).scan(tf.constant(-1, tf.int64), noted)
    return passed.filter(lambda image, seq, *rest: tf.size(seq) > 0).map(lambda image, seq, *rest: (image, *rest))


def read_image(source, image_size, channels: int, fallback, tf=None, path_of=None, method="antialias"):
    """``(uint8 image, ok)`` of one ``source``, encoded bytes (a string tensor) or, with
    ``path_of`` (a Python function of ``source``'s value), the file ``path_of(source)``:
    through TensorFlow when :func:`probe` allows it, else ``fallback(data)`` (Python: the
    image, or ``None`` when unreadable: ``ok`` False). One ``numpy_function`` per image;
    pipelines use :func:`read_batched`."""
    if tf is None:
        from edgecnn._tf import tf

    def plan_one(value):
        data = read_bytes(path_of(value)) if path_of is not None else bytes(value)
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
