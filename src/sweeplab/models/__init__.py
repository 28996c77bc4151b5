"""Models: a registry of small ``nn.Module`` classifiers, one file per family.

``create_model(name, input_shape=..., num_classes=..., **options)`` builds one,
``list_models()`` and ``model_options(name)`` describe what exists and what it accepts, and
``summarize(model, input_shape)`` reports layers, parameters and FLOPs. Models import nothing
from training code.
"""

from sweeplab.models.registry import (
    create_model,
    is_local,
    list_models,
    model_identity,
    model_options,
    probe_options,
    register_model,
)
from sweeplab.models.summary import ModelSummary, summarize

__all__ = ["ModelSummary", "create_model", "is_local", "list_models", "model_identity", "model_options",
           "probe_options", "register_model", "summarize"]
