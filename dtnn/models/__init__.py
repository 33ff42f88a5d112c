"""Models: the flat-parameter sequential ``Model`` and the builders in the zoo."""
from dtnn.models.model import Model, ParamSlot
from dtnn.models.zoo import MODELS, build_model

__all__ = ["Model", "ParamSlot", "MODELS", "build_model"]
