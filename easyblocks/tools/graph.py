"""Pictures of a model: Graphviz DOT and Mermaid text (no Python dependency).

Feature groups (grey), blocks (class and output shape), task towers (label and
losses), and the edges between them: block inputs, backbone outputs to towers,
`add_to_logit` (dashed) and calibration relations (dotted). SVG/PNG are rendered
by Graphviz's `dot` program when it is installed.
"""

from __future__ import annotations

import shutil
import subprocess

from easyblocks.errors import ConfigError
from easyblocks.tools.describe import ModelInfo


def _edges(info: ModelInfo) -> list[tuple[str, str, str, str]]:
    """(source id, target id, label, style) for every edge."""
    edges = []
    for b in info.blocks:
        for kind, name in b.inputs:
            src = {"group": f"group:{name}", "block": f"block:{name}",
                   "package": f"package:{name}"}.get(kind)
            if src:
                edges.append((src, f"block:{b.name}", "", "solid"))
    towers = info.towers
    if info.output_kind == "output_blocks" and len(info.outputs) == len(towers):
        pairs = list(zip(info.outputs, towers))
    else:
        pairs = [(o, t) for t in towers for o in info.outputs]
    for out, t in pairs:
        edges.append((f"block:{out}", f"tower:{t.name}", "", "solid"))
    for t in towers:
        for b in t.add_to_logit:
            edges.append((f"block:{b}", f"tower:{t.name}", "+ logit", "dashed"))
        for r in t.relation_tower_names:
            edges.append((f"tower:{r}", f"tower:{t.name}", "calibrates", "dotted"))
        for r in t.prob_product_of:
            edges.append((f"tower:{r}", f"tower:{t.name}", "x probability", "dashed"))
    return edges


def _nodes(info: ModelInfo) -> list[tuple[str, list[str], str]]:
    """(id, label lines, kind) for every node."""
    nodes = []
    packages = {n for b in info.blocks for k, n in b.inputs if k == "package"}
    for g, names in info.groups.items():
        nodes.append((f"group:{g}", [g, f"{len(names)} feature{'s' if len(names) != 1 else ''}, "
                                    f"dim {info.group_dims[g]}"],
                      "group"))
    for p in sorted(packages):
        nodes.append((f"package:{p}", [p, "package"], "package"))
    for b in info.blocks:
        nodes.append((f"block:{b.name}", [b.name, b.class_name, b.output_shape], "block"))
    for t in info.towers:
        losses = ", ".join(f"{loss.loss_type}" + (f" x{loss.weight:g}" if loss.weight != 1 else "")
                           for loss in t.losses)
        nodes.append((f"tower:{t.name}", [f"tower {t.name}", f"label: {t.label}", losses],
                      "tower"))
    return nodes


def to_dot(info: ModelInfo) -> str:
    style = {"group": 'shape=box, style="filled", fillcolor="#e8e8e8"',
             "package": 'shape=box3d',
             "block": 'shape=box, style="rounded"',
             "tower": 'shape=box, style="filled", fillcolor="#dbe9f7"'}

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    lines = ["digraph model {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for node_id, label, kind in _nodes(info):
        text = "\\n".join(esc(line) for line in label)  # DOT's line break inside a label
        lines.append(f'  "{esc(node_id)}" [label="{text}", {style[kind]}];')
    for src, dst, label, edge_style in _edges(info):
        attrs = [f'style={edge_style}'] + ([f'label="{esc(label)}"'] if label else [])
        lines.append(f'  "{esc(src)}" -> "{esc(dst)}" [{", ".join(attrs)}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(info: ModelInfo) -> str:
    ids = {}
    lines = ["flowchart BT"]
    for i, (node_id, label, kind) in enumerate(_nodes(info)):
        ids[node_id] = f"n{i}"
        text = "<br/>".join(label).replace('"', "'")
        shape = ('["', '"]') if kind != "tower" else ('(["', '"])')
        lines.append(f"  n{i}{shape[0]}{text}{shape[1]}")
    arrows = {"solid": "-->", "dashed": "-.->", "dotted": "-.->"}
    for src, dst, label, edge_style in _edges(info):
        arrow = arrows[edge_style]
        text = f"|{label}|" if label else ""
        lines.append(f"  {ids[src]} {arrow}{text} {ids[dst]}")
    return "\n".join(lines) + "\n"


def write_graph(info: ModelInfo, path: str) -> None:
    """Writes .dot/.gv (DOT), .mmd (Mermaid), or .svg/.png/.pdf through Graphviz's `dot`."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext in ("dot", "gv"):
        text = to_dot(info)
    elif ext in ("mmd", "mermaid"):
        text = to_mermaid(info)
    elif ext in ("svg", "png", "pdf"):
        dot = shutil.which("dot")
        if dot is None:
            raise ConfigError(f"{path}: rendering .{ext} needs Graphviz's `dot` program "
                              "(e.g. apt-get install graphviz); .dot and .mmd outputs need "
                              "nothing")
        subprocess.run([dot, f"-T{ext}", "-o", path], input=to_dot(info).encode(), check=True)
        return
    else:
        raise ConfigError(f"{path}: unknown output type .{ext}; use .dot, .mmd, .svg, .png or .pdf")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
