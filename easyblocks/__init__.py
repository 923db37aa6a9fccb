"""easyblocks: config-driven CTR models on TensorFlow 2 / Keras 3."""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
__all__ = ["register_block", "__version__"]


def __getattr__(name: str):
    # lazy, so that `import easyblocks.cli` does not load TensorFlow before it must
    if name == "register_block":
        from easyblocks.blocks.registry import register_block

        return register_block
    raise AttributeError(f"module 'easyblocks' has no attribute {name!r}")
