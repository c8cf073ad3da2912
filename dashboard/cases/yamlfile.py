"""Reading a YAML file people edit, keeping line numbers for the errors.

``yaml.safe_load`` forgets where a value came from and lets a repeated key silently win;
composing the node tree (``yaml.compose``) keeps each node's mark, so a mistake is reported
as ``file:line: what is wrong``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import yaml

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"


class FileError(ValueError):
    """A data file that cannot be used; the message starts with ``path:line:``."""

    def __init__(self, path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.problem = message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def compose(path: Path | str, text: str | None = None, error: type[FileError] = FileError) -> yaml.Node | None:
    """The document's root node (None for an empty file); YAML syntax errors become FileError."""
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise error(path, None, f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise error(path, None, f"not UTF-8 text: {exc.reason}") from None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = f"not valid YAML: {exc.problem or exc}"
        if exc.context and exc.context_mark and exc.context_mark.line != (mark and mark.line):
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"  # often where the slip is
        raise error(path, mark.line + 1 if mark else None, problem) from None
    except yaml.YAMLError as exc:
        raise error(path, None, f"not valid YAML: {exc}") from None


class Reader:
    """Typed access to nodes of one file, raising FileError with the node's line."""

    def __init__(self, path):
        self.path = path

    def fail(self, node: yaml.Node, message: str) -> FileError:
        return FileError(self.path, line(node), message)

    def mapping(self, node: yaml.Node, what: str, *, required=(), optional=()) -> dict[str, yaml.Node]:
        """A mapping's values by key; a repeated, unknown or missing key is refused."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value)")
        out: dict[str, yaml.Node] = {}
        allowed = set(required) | set(optional)
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag not in (STR, INT):
                raise self.fail(key, f"{what}: a key must be a plain word")
            name = key.value
            if name in out:
                raise self.fail(key, f"{what}: key {name!r} is given twice")
            if allowed and name not in allowed:
                raise self.fail(key, f"{what}: unknown key {name!r} (known: {', '.join(sorted(allowed))})")
            out[name] = value
        missing = [k for k in required if k not in out]
        if missing:
            raise self.fail(node, f"{what}: missing key {missing[0]!r}")
        return out

    def pairs(self, node: yaml.Node, what: str) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
        """A mapping's (key node, value node) pairs, keys unique, in file order."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value)")
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"{what}: a key must be a plain value")
            if key.value in seen:
                raise self.fail(key, f"{what}: key {key.value!r} is given twice")
            seen.add(key.value)
            yield key, value

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list (- item)")
        return list(node.value)

    def text(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != STR or not node.value.strip():
            raise self.fail(node, f"{what} must be non-empty text")
        return node.value.strip()

    def number(self, node: yaml.Node, what: str) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (INT, FLOAT):
            raise self.fail(node, f"{what} must be a number, not {_shown(node)}")
        try:
            return int(node.value) if node.tag == INT else float(node.value)
        except ValueError:
            raise self.fail(node, f"{what} must be a plain decimal number, not {node.value!r}") from None

    def integer(self, node: yaml.Node, what: str) -> int:
        value = self.number(node, what)
        if not isinstance(value, int):
            raise self.fail(node, f"{what} must be a whole number, not {node.value!r}")
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != BOOL:
            raise self.fail(node, f"{what} must be true or false, not {_shown(node)}")
        return node.value.lower() in ("true", "yes", "on", "y")


def _shown(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return repr(node.value)
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
