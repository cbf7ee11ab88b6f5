"""``edgecnn show``: pictures of what a run learned, linked from its report.md."""

from __future__ import annotations

import click

from edgecnn.cli._main import main


@main.command("show")
@click.argument("run", type=click.Path(), metavar="RUN")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the PNGs.  [default: RUN/show]")
@click.option("--layers", default=None, metavar="NAME,NAME",
              help="Keras layers whose feature maps are shown (default: the first, a middle and the last convolution).")
@click.option("--images", default=4, show_default=True, type=click.IntRange(1, 24),
              help="Test images Grad-CAM draws.")
@click.option("--seed", default=0, show_default=True, type=int, help="Which test images are drawn.")
def show_cmd(run, out, layers, images, seed):
    """Draw what the run in RUN learned, as PNGs linked from RUN/report.md.

    \b
    filters.png       the first convolution's kernels beside Sobel and Gabor filters
    feature_maps.png  feature maps of --layers for one test image, float32 over int8,
                      computed by the run's .tflite files, with each layer's int8 error
    grad_cam.png      Grad-CAM of the float model on --images test images, true and predicted labels
    confusion.png     the float32 file's confusion matrix on the test split
    Examples:
      edgecnn show runs/lenet5-32px
      edgecnn show runs/mobilenet-a0.25-224px --layers conv1,conv_pw_6,conv_pw_13 --images 8
    """
    from edgecnn.report.pictures import show_run
    from edgecnn.settings.run_config import check_out_path

    if out is not None:
        check_out_path(out, allow_outside=True, where="--out")
    names = [name.strip() for name in layers.split(",") if name.strip()] if layers else None
    show_run(run, out=out, layers=names, images=images, seed=seed, echo=click.echo)
