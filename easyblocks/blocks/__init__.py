"""Blocks: the registry and the built-in block families (one module per family)."""

from easyblocks.blocks import mlp  # noqa: F401  (registers MLP)
from easyblocks.blocks import multitask  # noqa: F401
from easyblocks.blocks import apg, pepnet, star  # noqa: F401
from easyblocks.blocks import din, interaction, mlr, similarity  # noqa: F401
from easyblocks.blocks.registry import get_block, register_block, registered_blocks

__all__ = ["get_block", "register_block", "registered_blocks"]
