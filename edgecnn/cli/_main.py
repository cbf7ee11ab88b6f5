"""The ``edgecnn`` click group: every user mistake is one line on stderr and exit code 2.

The command modules (``edgecnn/cli/<command>.py``) add their commands to :data:`main`;
``edgecnn/cli/__init__.py`` imports them all.
"""

from __future__ import annotations

import os
import sys

import click

from edgecnn import __version__
from edgecnn.device.cli import DeviceGroup


class EdgeGroup(DeviceGroup):
    """The device CLI's group (a user mistake is one line on stderr and exit code 2), and an
    interrupted run says that its finished stages are kept."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted; finished stages are kept and a rerun resumes", err=True)
            sys.exit(130)


def _verbose(ctx, param, value):
    """``--verbose``: let TensorFlow's and absl's own log lines through (set before TF loads)."""
    if value:
        os.environ["EDGECNN_VERBOSE"] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


@click.group(cls=EdgeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgecnn")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_verbose,
    help="Show TensorFlow's and absl's log lines (hidden by default: they read as errors and are not).",
)
def main():
    """Shrink classic CNNs for edge devices, and measure what each step costs.

    \b
    Start with:
      edgecnn optimize mobilenet --alpha 0.5 --int8   train, convert, evaluate, benchmark
      edgecnn list                                    the model zoo, with params and MACs
      edgecnn bench model.tflite                      latency of any .tflite
      edgecnn eval model.tflite --data digits         accuracy of any .tflite
    """
