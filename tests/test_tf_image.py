"""edgecnn.data.decode: the device side's preprocessing in TensorFlow ops gives the same bits."""

import io

import numpy as np
import pytest
from PIL import Image

from edgecnn.data.decode import JPEG, PILLOW, PNG, probe, probe_file, read_image
from edgecnn.device.preprocess import ImageError, load_image

RNG = np.random.default_rng(7)


def _textured(h, w, c=3):
    """Smooth colour field plus noise (JPEG sizes and resize errors like real photos)."""
    coarse = RNG.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.int16)
    img = np.clip(base + RNG.normal(0, 12, (h, w, 1)), 0, 255).astype(np.uint8)
    return img[..., 0] if c == 1 else img


def _encode(img: Image.Image, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _files():
    """(name, bytes, expected route): every colour mode and format the device side reads."""
    rgb, grey = Image.fromarray(_textured(37, 53)), Image.fromarray(_textured(41, 29, 1))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90; neither side transposes (the device does not)
    rgba = np.dstack([_textured(30, 30), RNG.integers(0, 256, (30, 30), dtype=np.uint8)])
    cases = [
        ("jpeg rgb 4:2:0", _encode(rgb, "JPEG", quality=90), JPEG),
        ("jpeg rgb 4:4:4", _encode(rgb, "JPEG", quality=95, subsampling=0), JPEG),
        ("jpeg rgb 4:2:2", _encode(rgb, "JPEG", quality=75, subsampling=1), JPEG),
        ("jpeg progressive", _encode(rgb, "JPEG", quality=85, progressive=True), JPEG),
        ("jpeg grey", _encode(grey, "JPEG", quality=90), JPEG),
        ("jpeg exif rotated", _encode(rgb, "JPEG", quality=90, exif=exif), JPEG),
        ("jpeg 1x1", _encode(Image.fromarray(_textured(1, 1)), "JPEG"), JPEG),
        ("jpeg 1 x 300", _encode(Image.fromarray(_textured(1, 300)), "JPEG"), JPEG),
        ("jpeg big", _encode(Image.fromarray(_textured(301, 257)), "JPEG", quality=90), JPEG),
        ("png rgb", _encode(rgb, "PNG"), PNG),
        ("png grey", _encode(grey, "PNG"), PNG),
        ("png rgb interlaced", _encode(rgb, "PNG", optimize=False), PNG),
        # the fallback: Pillow (the device side itself) reads these
        ("jpeg cmyk", _encode(rgb.convert("CMYK"), "JPEG"), PILLOW),
        ("png rgba", _encode(Image.fromarray(rgba, "RGBA"), "PNG"), PILLOW),
        ("png la", _encode(Image.fromarray(rgba, "RGBA").convert("LA"), "PNG"), PILLOW),
        ("png palette", _encode(rgb.convert("P"), "PNG"), PILLOW),
        ("png palette transparent", _encode(rgb.convert("P"), "PNG", transparency=3), PILLOW),
        ("png grey tRNS", _encode(grey, "PNG", transparency=40), PILLOW),
        ("png 16-bit", _encode(Image.fromarray(_textured(20, 24, 1).astype(np.uint16) * 257), "PNG"), PILLOW),
        ("png 1-bit", _encode(grey.convert("1"), "PNG"), PILLOW),
        ("bmp", _encode(rgb, "BMP"), PILLOW),
        ("gif", _encode(rgb, "GIF"), PILLOW),
    ]
    return cases


FILES = _files()
SIZES = [(24, 24), (1, 1), (7, 300)]


def test_probe_routes_by_content_and_header():
    for name, data, route in FILES:
        assert probe(data) == route, name
    jpeg = FILES[0][1]
    assert probe(jpeg[:-100]) == PILLOW  # truncated: no EOI
    assert probe(b"not an image") == PILLOW and probe(b"") == PILLOW
    png = next(data for name, data, _ in FILES if name == "png rgb")
    assert probe(png[:-12]) == PILLOW  # no IEND


def test_probe_file_reads_the_headers_and_the_end_only_and_agrees_with_probe(tmp_path):
    """``probe_file`` reads a file's first ``head`` bytes and its last 12: at any ``head``
    (headers cut anywhere, inside a segment, a chunk or the frame header) it answers as
    ``probe`` of the whole file, and reads the rest only when the headers run on."""
    rgb = Image.fromarray(_textured(37, 53))
    grey = np.asarray(Image.fromarray(_textured(41, 29, 1)))
    comment = _encode(rgb, "JPEG", quality=90, comment=b"x" * 3000)  # a long COM segment before the frame
    trns_late = _encode(Image.fromarray(grey), "PNG", transparency=40, pnginfo=_text_chunk(3000))
    cases = [*FILES, ("jpeg long comment", comment, JPEG), ("png tRNS after a long chunk", trns_late, PILLOW)]
    cases += [("jpeg truncated", comment[:-100], PILLOW), ("png without IEND", trns_late[:-12], PILLOW)]
    for name, data, route in cases:
        path = tmp_path / "f.bin"
        path.write_bytes(data)
        for head in (16, 30, 200, 1000, 2999, 3050, len(data) - 1, len(data), 1 << 16):
            assert probe_file(path, head=head) == route, (name, head)
    assert probe_file(tmp_path / "missing.jpg") == PILLOW


def _text_chunk(n: int):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "y" * n)
    return info


@pytest.mark.parametrize("method", ["antialias", "bilinear"])
def test_same_tensor_as_the_device_side(tmp_path, method):
    """Every file, size and channel count: the TF path's uint8 tensor equals load_image's."""
    from edgecnn._tf import tf

    fns = {}
    sizes = SIZES
    for size in sizes:
        for channels in (1, 3):

            def fallback(data, size=size, channels=channels):
                return load_image(io.BytesIO(data), size, channels, method)

            fns[size, channels] = tf.function(
                lambda d, size=size, channels=channels, fallback=fallback: read_image(
                    d, size, channels, fallback, tf, method=method
                )
            )
    checked = 0
    for name, data, _ in FILES:
        for (size, channels), fn in fns.items():
            image, ok = fn(tf.constant(data))
            expected = load_image(io.BytesIO(data), size, channels, method)
            assert bool(ok) and image.shape == expected.shape, (name, size, channels)
            assert np.array_equal(image.numpy(), expected), (name, size, channels, method)
            checked += 1
    assert checked == len(FILES) * len(sizes) * 2


def test_corrupt_files_go_to_the_fallback_and_are_skipped(tmp_path):
    """Truncated and garbage files take the Pillow path, which reports them (ok is False)."""
    from edgecnn._tf import tf

    def fallback(data):
        try:
            return load_image(io.BytesIO(data), (8, 8), 3)
        except ImageError:
            return None

    jpeg = FILES[0][1]
    for data in (jpeg[: len(jpeg) // 2], b"\xff\xd8\xff garbage \xff\xd9", b"garbage"):
        image, ok = read_image(tf.constant(data), (8, 8), 3, fallback, tf)
        assert not bool(ok)
