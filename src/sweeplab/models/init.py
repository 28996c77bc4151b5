"""Weight initialisation schemes, chosen per run with the ``init`` model option.

``create_model`` applies the scheme after building the model, so model files only ever use
PyTorch's default initialisation and an init ablation needs no change to any model.

- ``default``: leave PyTorch's per-layer defaults alone.
- ``normal``: weights ~ N(0, init_std).
- ``xavier_normal``: Glorot & Bengio 2010, std = sqrt(2 / (fan_in + fan_out)).
- ``kaiming_normal``: He et al. 2015, fan_out mode for ReLU, std = sqrt(2 / fan_out).

For every scheme but ``default``, all biases are zero and normalisation layers (BatchNorm,
GroupNorm, LayerNorm) get weight 1 and bias 0. "Weights" are all parameters with two or more
dimensions (Linear, Conv, Embedding, and recurrent ``weight_ih``/``weight_hh`` matrices); every
one-dimensional parameter outside a normalisation layer is a bias.
"""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.models._common import check_choice, check_positive_float

INIT_SCHEMES = ("default", "normal", "xavier_normal", "kaiming_normal")

_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


def check_init(init: object, init_std: object) -> tuple[str, float]:
    """Validate the ``init`` and ``init_std`` options (raises ``ConfigError``)."""
    return check_choice("init", init, INIT_SCHEMES), check_positive_float("init_std", init_std)


@torch.no_grad()
def init_weights(model: nn.Module, init: str = "default", init_std: float = 0.01) -> None:
    """Re-initialise ``model``'s parameters in place with scheme ``init`` (see module docstring)."""
    init, init_std = check_init(init, init_std)
    if init == "default":
        return
    for module in model.modules():
        if isinstance(module, _NORM_LAYERS):
            # Affine-free norms have weight/bias None.
            if module.weight is not None:
                nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
            continue
        # recurse=False: each parameter is visited once, by the module that owns it.
        for param in module.parameters(recurse=False):
            if param.dim() < 2:
                nn.init.zeros_(param)
            elif init == "normal":
                nn.init.normal_(param, mean=0.0, std=init_std)
            elif init == "xavier_normal":
                nn.init.xavier_normal_(param)
            else:
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")
