"""A capped YAML reader for specs: size, alias expansion and duplicate keys checked before use.

PyYAML shares an aliased node, so a 371-byte spec of nested aliases builds quickly but
expands to billions of values once anything walks it (the schema, json.dumps, str()). The
node graph is measured as it would expand, before any Python object is built.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

MAX_SPEC_BYTES = 1 << 20  # a real spec is a few hundred bytes
MAX_NODES = 100_000  # values after alias expansion; a real spec has well under 1000
MAX_SCALAR_CHARS = 4 << 20  # text after alias expansion


class YamlLimitError(ValueError):
    """The spec is too big, expands too far, or repeats a key; the message says where."""


def read_spec_text(path: Path, limit: int = MAX_SPEC_BYTES) -> str:
    """The spec's text, never blocking on a FIFO and never reading more than `limit` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise YamlLimitError(f"not a regular file ({stat.filemode(st.st_mode)})")
        if st.st_size > limit:
            raise YamlLimitError(f"the spec is {st.st_size} bytes, more than the {limit} bytes allowed")
        os.set_blocking(fd, True)
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise YamlLimitError(f"the spec grew past the {limit} bytes allowed")
    finally:
        os.close(fd)
    return data.decode("utf-8")


def check_node(root: Any, max_nodes: int = MAX_NODES, max_chars: int = MAX_SCALAR_CHARS) -> None:
    """Refuse a node graph whose expansion is too big or recursive, or a mapping with a repeated key."""
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, chars) once expanded
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            values = 1 + sum(sizes[id(c)][0] for c in children)
            chars = sum(sizes[id(c)][1] for c in children)
            if values > max_nodes or chars > max_chars:
                raise YamlLimitError(f"aliases expand to more than {max_nodes} values or {max_chars} "
                                     f"characters (line {node.start_mark.line + 1}); a spec needs far fewer")
            sizes[key] = (values, chars)
            continue
        if key in sizes:
            continue
        if key in active:
            raise YamlLimitError(f"recursive alias (line {node.start_mark.line + 1})")
        if isinstance(node, ScalarNode):
            sizes[key] = (1, len(node.value))
            continue
        active.add(key)
        stack.append((node, True))
        if isinstance(node, MappingNode):
            _duplicates(node)
        stack.extend((c, False) for c in _children(node))
    assert isinstance(root, (MappingNode, ScalarNode, SequenceNode))


def _children(node: Any) -> list[Any]:
    """The nodes directly below a node."""
    from yaml.nodes import MappingNode, SequenceNode

    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _duplicates(node: Any) -> None:
    """A key given twice in one mapping, with both lines."""
    from yaml.nodes import ScalarNode

    seen: dict[tuple[str, str], int] = {}
    for key, _value in node.value:
        if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        first = seen.get((key.tag, key.value))
        if first is None:
            seen[(key.tag, key.value)] = line
        else:
            raise YamlLimitError(f"duplicate key {key.value!r} (lines {first} and {line}); "
                                 "the second would silently replace the first")


def load_capped(text: str) -> Any:
    """yaml.safe_load with the checks above, done on the node graph before construction."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = base(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_node(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()
