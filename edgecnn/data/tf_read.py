"""``tf.data`` readers of encoded images: the device side's preprocessing in a pipeline.

:func:`read_batched` reads keys (encoded bytes, or files named by them) ``plan_batch`` at a
time in Python (:func:`edgecnn.data.decode.plan`: the header check and the Pillow fallback),
then decodes and resizes them in parallel with :func:`edgecnn.data.decode.decode_resize`;
:func:`read_files` reads files whose route is known beforehand (an image folder's headers are
checked once, when its pipeline is built) with no Python per file. Both give the tensor
:func:`edgecnn.device.preprocess.load_image` gives, and both drop a file TensorFlow's decoder
refuses mid-epoch instead of failing, and name it (:class:`_Drops`).
"""

from __future__ import annotations

import os

import numpy as np

from edgecnn.data.decode import decode_resize, plan, read_bytes
from edgecnn.device.preprocess import ImageError


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
    a time in one ``numpy_function`` (several batches in parallel; :func:`~edgecnn.data.decode.plan`),
    then decoded and resized in parallel by :func:`~edgecnn.data.decode.decode_resize` to ``uint8``,
    and ``then(image)`` (e.g. the normalisation; it gets the pixel values as ``float32``) in the same step.

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
    plan_py = _planner(drops, fallback, path_of, cache)

    def read_plan(seq, *batch):
        out = tf.numpy_function(plan_py, [seq, *batch], [tf.string, tf.int64, tf.bool, *(s.dtype for s in specs)])
        for t, s in zip(out, [None, None, None, *specs]):
            t.set_shape([None] + ([] if s is None else s.shape.as_list()))
        return tuple(out)

    read = _planned_reader((int(image_size[0]), int(image_size[1]), int(channels)), method, then, cache, tf)
    numbered = _numbered(keys, drops, plan_batch, tf)
    planned = numbered.map(read_plan, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    decoded = planned.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _passed(decoded, keys, drops, tf)


def _planner(drops: _Drops, fallback, path_of, cache):
    """The Python step of :func:`read_batched`: a batch ``(seq, key, *rest)`` -> ``(encoded,
    seq, raw, key, *rest)`` of the readable items (a stored image as its raw bytes, ``raw``
    True; else :func:`~edgecnn.data.decode.plan`'s answer), the unreadable ones forgotten."""

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

    return plan_py


def _planned_reader(shape: tuple, method: str, then, cache, tf):
    """The parallel step of :func:`read_batched`: a planned item -> ``(image, seq, key, *rest)``,
    decoded and resized (or, with ``cache``, read back from its stored bytes, else decoded and stored)."""
    size, channels = shape[:2], shape[2]

    def put(key, image):
        cache.put(key, image)
        return image

    def read(data, seq, stored, key, *rest):
        if cache is None:
            image = decode_resize(data, size, channels, tf, method, as_float=then is not None)
        else:

            def decoded():
                fresh = decode_resize(data, size, channels, tf, method)
                return tf.numpy_function(put, [key, fresh], tf.uint8)

            image = tf.cond(stored, lambda: tf.reshape(tf.io.decode_raw(data, tf.uint8), shape), decoded)
            image.set_shape(shape)
            image = image if then is None else tf.cast(image, tf.float32)
        return (image if then is None else then(image), seq, key, *rest)

    return read


def read_files(
    keys,
    paths,
    routes,
    image_size,
    channels: int,
    fallback,
    *,
    method: str = "antialias",
    then=None,
    extra=None,
    name_of=None,
    on_drop=None,
    batch=None,
):
    """``keys`` (a dataset of ``(key, *rest)``, ``key`` an index into ``paths``) ->
    ``(image, key, *rest, *extra(key))`` for every readable file, in order: what
    :func:`read_batched` gives, for files whose :func:`~edgecnn.data.decode.probe` is known
    beforehand (``routes``: ``routes[key]`` is 1 where TensorFlow decodes the file exactly as
    Pillow does (:func:`~edgecnn.data.decode.probe_file`), 0 where it does not, -1 for a file
    that is not to be read). Each file is read, decoded, resized and passed to
    ``then(image, key, *rest)`` (the image as ``float32``; e.g. normalisation and augmentation)
    by TensorFlow in one parallel step, with no Python per file; ``extra(key)`` (e.g. the
    label, a tensor or a tuple of them) is computed in the same step. A file routed to Pillow
    goes to ``fallback(key, *rest)`` (Python, numpy values: the ``uint8`` image at the final
    size, or ``None`` for an unreadable file, which it reports); only a pipeline that has such
    files branches per item.

    Item by item (``batch`` None), a file TensorFlow's decoder refuses is dropped and named
    as :func:`read_batched` does. With ``batch``, the items come in batches of ``batch``
    (the read and the batching fuse, and nothing runs per item after the read): a read that
    raises loses its whole batch inside ``tf.data``, so the lost batch's items are read
    again, one by one, by ``fallback`` (the device side's reader, which decodes exactly as
    TensorFlow does where TensorFlow succeeds) and go out ahead of the next batch; the items
    and their order are the item-by-item pipeline's, and ``fallback`` reports the refused
    file. Python runs once per 4,096 items, where a batch was lost, and at the end of a pass."""
    from edgecnn._tf import tf

    drops = _Drops(name_of or (lambda key, *rest: str(key)), on_drop or (lambda name: None))
    shape = (int(image_size[0]), int(image_size[1]), int(channels))

    def finish_item(image, key, *rest):  # ``then`` and ``extra``, for one item
        more = () if extra is None else extra(key)
        more = tuple(more) if isinstance(more, (tuple, list)) else (more,)
        return (image if then is None else then(image, key, *rest), *more)

    read = _file_reader(paths, routes, shape, fallback, method, then is not None, finish_item, tf)
    items = _numbered(keys, drops, 64, tf).unbatch().map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if batch is None:
        return _passed(items, keys, drops, tf)
    return _recovered(items, keys, drops, fallback, finish_item, (shape, then is not None, batch), tf)


def _file_reader(paths, routes, shape: tuple, fallback, method: str, as_float: bool, finish_item, tf):
    """The parallel step of :func:`read_files`: ``(seq, key, *rest)`` -> ``(image, seq, key,
    *rest, *more)``, the file read by TensorFlow or (its route 0) by ``fallback``, then ``finish_item``."""
    paths_t = tf.constant([os.fsencode(p) for p in paths], tf.string)  # the file system's own bytes
    routes = np.asarray(routes, dtype=np.int8)
    read_by_tf = routes[routes >= 0] == 1
    routes_t = tf.constant(routes == 1)

    def pillow(key, *rest):
        image = fallback(key, *rest)
        if image is None:  # reported by the fallback; the error drops the item
            raise ImageError(f"unreadable: {key}")
        return np.ascontiguousarray(image, dtype=np.uint8)

    def read(seq, key, *rest):
        def decoded():
            data = tf.io.read_file(tf.gather(paths_t, key))
            return decode_resize(data, shape[:2], shape[2], tf, method, as_float)

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

    return read


def _recovered(items, keys, drops: _Drops, fallback, finish_item, layout: tuple, tf):
    """:func:`read_files`' ``items`` in batches, a batch lost to a read that raised read again
    by ``fallback`` (``layout``: the image shape, whether images are ``float32``, the batch size)."""
    shape, as_float, batch = layout
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
