"""Blocks: the registry and the built-in block families (one module per family)."""

from easyblocks.blocks import (  # noqa: F401  # noqa: F401
    apg,
    din,
    interaction,
    mlp,  # noqa: F401  (registers MLP)
    mlr,
    multitask,  # noqa: F401
    pepnet,
    similarity,
    star,
)
from easyblocks.blocks.registry import get_block, register_block, registered_blocks

__all__ = ["get_block", "register_block", "registered_blocks"]
