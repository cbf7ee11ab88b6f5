"""``edgecnn data pack``: an image folder into TFRecord shards (``--data 'OUT/*.tfrecord'``)."""

from __future__ import annotations

import click

from edgecnn.cli._main import main


@main.group("data")
def data_cmd():
    """Prepare datasets for streaming."""


@data_cmd.command("pack")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--shards", default=16, show_default=True, type=click.IntRange(min=1), help="Number of shard files.")
@click.option("--seed", default=0, show_default=True, help="Seed of the order records are spread over the shards.")
def pack_cmd(folder, out, shards, seed):
    """Write FOLDER (one subfolder per class) as TFRecord shards in OUT.

    \b
    Each record: image/encoded (the file's bytes, not decoded), image/format,
    image/class/label (int64) and image/class/text (the class name): the feature spec of
    TF Model Garden and TFDS. Train on them with --data 'OUT/*.tfrecord'.
    Example:
      edgecnn data pack photos/ shards/ --shards 16
    """
    from edgecnn.data.stream import list_files
    from edgecnn.data.tfrecord import pack_folder

    total = len(list_files(folder)[0])
    with click.progressbar(length=total, label=f"packing {total} images", file=click.get_text_stream("stderr")) as bar:
        info = pack_folder(folder, out, shards=shards, progress=bar.update, seed=seed)
    click.echo(
        f"{info['records']} images of {len(info['classes'])} classes in {len(info['shards'])} shards: "
        f"--data '{out.rstrip('/')}/*.tfrecord'"
    )
