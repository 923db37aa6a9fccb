"""A model's structure as data: blocks (class, inputs, output shape, parameters) and towers.

Used by `easyblocks validate` (a table) and `easyblocks graph` (a picture).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from easyblocks.config.specs import PipelineSpec
from easyblocks.models.build import build_and_initialize, dummy_columns
from easyblocks.models.state import frozen_variables


@dataclasses.dataclass
class BlockInfo:
    name: str
    class_name: str
    inputs: list[tuple[str, str]]  # (kind, name): kind is "group", "block" or "package"
    output_shape: str
    params: int


@dataclasses.dataclass
class ModelInfo:
    groups: dict[str, list[str]]
    group_dims: dict[str, int]
    blocks: list[BlockInfo]
    outputs: list[str]
    output_kind: str  # "output_blocks" or "concat_blocks"
    towers: list  # TowerSpec
    total_params: int
    model_class: str = "RankModel"
    expanded_from: str | None = None  # the model class template, e.g. "DeepFM"


def _shape(value) -> str:
    if isinstance(value, (list, tuple)):
        shapes = [_shape(v) for v in value]
        if len(shapes) > 3 and len(set(shapes)) == 1:  # e.g. a group's feature list
            return f"[{len(shapes)} x {shapes[0]}]"
        return "[" + ", ".join(shapes) + "]"
    return "(" + ", ".join("batch" if i == 0 else str(d) for i, d in enumerate(value.shape)) + ")"


_KINDS = {"group": "group", "block": "block", "package": "package",
          "package_input": "package input"}


def describe(spec: PipelineSpec) -> ModelInfo:
    """Builds the model on a small synthetic batch and records every block's output."""
    model, pre = build_and_initialize(spec)
    frozen_variables(model, spec)  # a freeze_gradient pattern that finds nothing: an error
    features = model.feature_groups(pre(dummy_columns(spec)))
    dag = model.backbone.dag
    values = dag.block_values(features, training=False)
    blocks = []
    for name in dag.order:
        block = dag.blocks[name]
        params = sum(int(np.prod(v.shape)) for layer in block.layers for v in layer.weights)
        inputs = [(_KINDS[i.kind], i.name) for i in block.spec.inputs]
        blocks.append(BlockInfo(name, block.spec.class_name, inputs, _shape(values[name]),
                                params))
    return ModelInfo(
        groups={g.name: list(g.features) for g in spec.groups.values()},
        group_dims=model.feature_groups.group_dims(),
        blocks=blocks,
        outputs=list(dag.spec.outputs),
        output_kind=dag.spec.output_kind,
        towers=spec.towers,
        total_params=int(sum(np.prod(v.shape) for v in model.weights)),
        model_class=spec.model.model_class,
        expanded_from=spec.model.expanded_from,
    )


def format_table(info: ModelInfo) -> str:
    """The text table `easyblocks validate` prints."""
    rows = [("block", "class", "inputs", "output shape", "params")]
    for g, names in info.groups.items():
        plural = "s" if len(names) != 1 else ""
        rows.append((g, "feature group", f"{len(names)} feature{plural}",
                     f"(batch, {info.group_dims[g]})",
                     ""))
    for b in info.blocks:
        rows.append((b.name, b.class_name, ", ".join(n for _, n in b.inputs), b.output_shape,
                     f"{b.params:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if info.expanded_from:
        lines.insert(0, f"model_class {info.expanded_from}: expanded into a {info.model_class} "
                        "with these blocks (easyblocks validate --expand prints its config)")
    lines.append(f"{info.output_kind}: {', '.join(info.outputs)}")
    lines.append("")
    lines.append("tower            label            losses")
    for t in info.towers:
        losses = ", ".join(f"{loss.loss_type} x{loss.weight:g}" for loss in t.losses)
        extra = ""
        if t.relation_tower_names:
            extra += f"; relation towers: {', '.join(t.relation_tower_names)}"
        if t.add_to_logit:
            extra += f"; logit + {', '.join(t.add_to_logit)}"
        if t.prob_product_of:
            extra += f"; probability x {' x '.join(t.prob_product_of)} (losses on the product)"
        if t.logit_from_backbone:
            extra += "; logit = backbone output"
        lines.append(f"{t.name:<16} {t.label:<16} {losses} (tower weight {t.weight:g}){extra}")
    lines.append(f"total parameters: {info.total_params:,} (embedding tables included)")
    return "\n".join(lines)
