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
