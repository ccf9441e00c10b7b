"""YAML text → plain Python data plus the line of every key path.

PyYAML's `compose` gives nodes with positions; we build the data ourselves so
that every problem can name its line, and so that YAML 1.1 surprises do not
reach validation: an unquoted `0xAbC…` address stays text (YAML 1.1 would
make it an int), `12:30` stays text (not sexagesimal 750), timestamps stay
text (we parse RFC 3339 ourselves), and floats keep their source text so the
error can say what to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Self

import yaml

__all__ = ["YamlDoc", "YamlFloat", "YamlSyntaxError", "index", "join", "parse_yaml"]

_TAG = "tag:yaml.org,2002:"
_CANONICAL_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class YamlFloat(float):
    """A float read from YAML, with its source text (floats are refused for money)."""

    text: str

    def __new__(cls, value: float, text: str) -> Self:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


class YamlSyntaxError(Exception):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


@dataclass
class YamlDoc:
    data: Any
    lines: dict[str, int] = field(default_factory=dict)  # key path → 1-based line
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, message)


def join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


# libyaml's parser when PyYAML was built with it: the same nodes and marks, ~10×
# faster (a deposit fleet of 100k addresses parses in seconds, not a minute).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> YamlDoc:
    """Parse one YAML document. Raises YamlSyntaxError with the line."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(f"{e.problem or e}", line) from None
    except yaml.YAMLError as e:
        raise YamlSyntaxError(str(e), None) from None
    doc = YamlDoc(data=None)
    if node is not None:
        doc.lines[""] = node.start_mark.line + 1
        doc.data = _build(node, "", doc)
    return doc


def _build(node: yaml.Node, path: str, doc: YamlDoc) -> Any:
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(node, path, doc)
    if isinstance(node, yaml.SequenceNode):
        out = []
        for i, item in enumerate(node.value):
            p = index(path, i)
            doc.lines.setdefault(p, item.start_mark.line + 1)
            out.append(_build(item, p, doc))
        return out
    return _scalar(node, path, doc)


def _merged_pairs(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """Entries with YAML merge keys (`<<: *defaults`) expanded; explicit keys win."""
    pairs: list[tuple[yaml.Node, yaml.Node]] = []
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    for k, v in node.value:
        if k.tag == _TAG + "merge":
            sources = v.value if isinstance(v, yaml.SequenceNode) else [v]
            for src in sources:
                if isinstance(src, yaml.MappingNode):
                    merged.extend(_merged_pairs(src))
        else:
            pairs.append((k, v))
    explicit = {k.value for k, _ in pairs if isinstance(k, yaml.ScalarNode)}
    return pairs + [(k, v) for k, v in merged if k.value not in explicit]


def _build_mapping(node: yaml.MappingNode, path: str, doc: YamlDoc) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in _merged_pairs(node):
        if not isinstance(k, yaml.ScalarNode):
            doc.problems.append((path, "a key must be plain text, not a list or mapping"))
            continue
        key = str(k.value)
        p = join(path, key)
        if key in out:
            line = doc.lines.get(p)
            doc.problems.append((p, f"duplicate key `{key}` (also on line {line}); remove one"))
            continue
        doc.lines[p] = k.start_mark.line + 1
        out[key] = _build(v, p, doc)
    return out


def _scalar(node: yaml.Node, path: str, doc: YamlDoc) -> Any:
    tag, raw = node.tag, node.value
    plain = not getattr(node, "style", None)  # None (pure-Python parser) or "" (libyaml)
    if tag == _TAG + "str" or not plain and tag.startswith(_TAG):
        return raw
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "bool":
        return yaml.SafeLoader.bool_values[raw.lower()]
    if tag == _TAG + "int":
        # Hex, octal, sexagesimal and underscores stay text: `0xAbC…` is an address.
        return int(raw.replace("_", "")) if _CANONICAL_INT.match(raw) else raw
    if tag == _TAG + "float":
        return YamlFloat(_CONSTRUCTOR.construct_yaml_float(node), raw)
    if tag == _TAG + "timestamp":
        return raw
    doc.problems.append((path, f"the YAML tag {tag} is not supported; write plain text"))
    return raw
