"""`nnprobe models [PATTERN]`: build options -> guard the output -> api.list_models_with -> report -> exit 0.

Lists what loads offline (nothing is downloaded or loaded); imports torchvision/timm only for their weights'
metadata when their caches hold something."""
from __future__ import annotations

import click

from nnprobe.cli.options import command_options
from nnprobe.cli.preflight import finish, guard_verb
from nnprobe.options.verbs import MODELS


@click.command("models", short_help="List the models that load offline, with the preprocessing each would use.")
@command_options(MODELS)
def command(**options) -> int:
    """The models `--model` can load without a download: the embedded default, torchvision weights in the
    torch hub cache, timm weights in the Hugging Face cache, and local model files PATTERN matches; each with
    the resize, crop, interpolation and mean/std it would use, from the weights' own metadata.

    Exit codes: 0 listed (an empty list too), 2 bad option.
    """
    options = guard_verb("models", options)

    from nnprobe.api.many import list_models_with

    result = list_models_with(options)
    return finish(result, options["report"], passed=True)
