"""Models: the flat-parameter sequential ``Model``, ``Sequential`` (a model from your
own layers and blocks) and the builders of the zoo (``MODELS``: simplecnn, lenet,
vgg11_bn, vgg16_bn, vgg19, cnet, mobilenet_v2).

    model = dtnn.models.build("mobilenet_v2", (1, 28, 28), 10, width=0.5)
"""
from typing import Any, Sequence

from dtnn.models.model import Model, ParamSlot
from dtnn.models.zoo import MODELS, build_model
from dtnn.models import mobilenet as _mobilenet  # noqa: F401  (registers mobilenet_v2)
from dtnn.models.mobilenet import inverted_residual, mobilenet_v2
from dtnn.models.sequential import Sequential


def build(name: str, input_shape: Sequence[int], num_classes: int, seed: int = 0,
          **options: Any) -> Model:
    """Zoo model ``name`` (``MODELS.names()``) for per-sample ``input_shape`` and
    ``num_classes``, initialised from ``seed``; ``options`` are the builder's (e.g.
    ``width=0.5``).  Same defaults as ``dtnn train`` (``model.conv_algorithm``)."""
    from dtnn.config import ModelConfig
    options.setdefault("conv_algorithm", ModelConfig().conv_algorithm)
    return build_model(name, input_shape, num_classes, seed=seed, **options)


__all__ = ["Model", "ParamSlot", "Sequential", "MODELS", "build", "build_model",
           "inverted_residual", "mobilenet_v2"]
