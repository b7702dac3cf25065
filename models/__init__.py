"""Model registry. Every module in this folder is imported, so a new model is one file here.

A model is an ``nn.Module`` registered with ``@MODELS.register``; its constructor takes
``lr_channels``, ``guide_channels`` and ``ratio`` (filled in from the data) plus the keyword
arguments of the YAML ``model:`` entry, and its ``forward(lr, up, guide)`` returns the fused image.
A model with intermediate images for a multi-scale loss lists their names in
``auxiliary_outputs``; ``forward(lr, up, guide, auxiliary=True)`` then returns
``(fused, {name: image})`` (BDPN; see engine/losses.py).
"""

from utils.registry import Registry, import_all_modules

MODELS = Registry("model")

import_all_modules(__name__)
