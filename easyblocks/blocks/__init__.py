"""Blocks: the registry and the built-in block families (one module per family)."""

from easyblocks.blocks import (  # noqa: F401  (importing a module registers its blocks)
    apg,
    attention,
    auxiliary,
    cross,
    din,
    fibinet,
    gates,
    interaction,
    linear,
    masknet,
    mlp,
    mlr,
    multitask,
    numeric,
    pepnet,
    sequence,
    similarity,
    star,
)
from easyblocks.blocks.registry import get_block, register_block, registered_blocks

__all__ = ["get_block", "register_block", "registered_blocks"]
