"""YAML read into plain data, with the position of every value and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import yaml

from ..errors import InvalidInput, Location, Problem

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 50_000  # after alias expansion: stops "billion laughs" early
MAX_DEPTH = 40


# ---------------------------------------------------------------- YAML with positions

_PLAIN_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "seq", "map")
}
KeyPath = tuple[Union[str, int], ...]


class Tree:
    """Plain data from a YAML node graph, with the position of every value and key."""

    def __init__(self, path: Path, loader: Any):
        self.path = path
        self.loader = loader
        self.marks: dict[KeyPath, Location] = {}
        self.key_marks: dict[KeyPath, Location] = {}
        self.nodes = 0

    def location(self, mark: yaml.Mark) -> Location:
        return Location(self.path, mark.line + 1, mark.column + 1)

    def build(self, node: yaml.Node, keys: KeyPath = (), depth: int = 0) -> Any:
        self.nodes += 1
        where = self.location(node.start_mark)
        if self.nodes > MAX_NODES:
            raise InvalidInput(Problem(
                f"the script is too large or expands too far (over {MAX_NODES} values, "
                "often a YAML alias bomb); write it out plainly", where))
        if depth > MAX_DEPTH:
            raise InvalidInput(Problem(f"nesting is deeper than {MAX_DEPTH} levels", where))
        if node.tag not in _PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise InvalidInput(Problem(
                f"the tag {tag} is not allowed: scripts hold plain text, numbers, lists "
                "and mappings only", where))
        self.marks[keys] = where
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, keys + ("<key>",), depth + 1)
                if not isinstance(key, str):
                    raise InvalidInput(Problem(f"keys must be text, not {key!r}", self.location(key_node.start_mark)))
                if key in result:
                    raise InvalidInput(Problem(f"the key '{key}' appears twice", self.location(key_node.start_mark)))
                self.key_marks[keys + (key,)] = self.location(key_node.start_mark)
                result[key] = self.build(value_node, keys + (key,), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, keys + (i,), depth + 1) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as err:
            raise InvalidInput(Problem(f"unreadable value {node.value!r}: {err}", where)) from None

    def where(self, keys: KeyPath) -> Location:
        while keys not in self.marks and keys:
            keys = keys[:-1]
        return self.marks.get(keys, Location(self.path, 1, 1))


def explain(err: yaml.MarkedYAMLError, text: str) -> str:
    """What to change, for the YAML mistakes people make in scripts; the parser's own words for
    the rest."""
    problem = err.problem or "not valid YAML"
    mark, context = err.problem_mark, err.context_mark
    if mark is None:
        return problem
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if "'\\t'" in problem or "\t" in problem:
        return "a tab indents this line; YAML indents with spaces only: replace the tab with spaces"
    if problem == "mapping values are not allowed here":
        key, sep, value = line.partition(": ")
        if sep and ": " in value or value.rstrip().endswith(":"):
            quote = "'" if '"' in value else '"'
            value = value.strip().replace("'", "''") if quote == "'" else value.strip()
            return (f"text that contains a colon must be quoted: write {key.strip()}: {quote}{value}{quote}")
        return ("this line is indented deeper than the one above it, so YAML reads it as more of that "
                "line's text: line it up with the line above (a new step starts with '- ' in line with the others)")
    if problem.startswith("expected <block end>") and context is not None:
        above = lines[context.line] if context.line < len(lines) else ""
        column = mark.column + 1
        if err.context == "while parsing a block collection":
            dash = context.column + 1
            first = dash + 2 + len(above[context.column + 1:]) - len(above[context.column + 1:].lstrip(" ")) - 1
            if column == dash:
                return (f"this line has no '- ' in front, so it is not an item of the list started at line "
                        f"{context.line + 1}: each step starts with a dash, as in - {line.strip()}")
            return (f"this line is indented to column {column}, but the step above (line {context.line + 1}) "
                    f"has its keys at column {first}: line it up with them to belong to that step, or start "
                    f"a new step with '- ' at column {dash}")
        return (f"this line is indented to column {column}, which lines up with nothing above it: "
                "indent it like the key it belongs with (YAML reads the structure from the indentation)")
    if err.context == "while scanning a quoted scalar" and context is not None:
        return (f"the quote opened at line {context.line + 1}, column {context.column + 1} is never closed: "
                "close it at the end of the text")
    return problem


def read_tree(path: Path) -> tuple[Any, Tree]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a folder, not a script") from None
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read it ({err.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidInput(f"{path}: {len(raw)} bytes is too large for a script (limit {MAX_FILE_BYTES})")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InvalidInput(Problem(
            f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x}); save it as UTF-8",
            Location(path, line, 1))) from None
    if "\x00" in text:
        raise InvalidInput(Problem("the file holds binary data, not a YAML script", Location(path, 1, 1)))
    if not text.strip():
        raise InvalidInput(Problem("the file is empty: a script needs guidetrack: 1, title and steps",
                                   Location(path, 1, 1)))
    fast = getattr(yaml, "CSafeLoader", None)  # libyaml's parser: about ten times faster
    if fast is not None:
        loader = fast(text)
        tree = Tree(path, loader)
        try:
            node = loader.get_single_node()
            if node is not None:
                return tree.build(node), tree
        except (yaml.YAMLError, RecursionError):
            pass  # read again below by PyYAML's own parser, whose messages `explain` knows
        finally:
            loader.dispose()
    loader = yaml.SafeLoader(text)
    tree = Tree(path, loader)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InvalidInput(Problem("the file has no content", Location(path, 1, 1)))
        data = tree.build(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        if err.context == "while scanning a quoted scalar" and err.context_mark is not None:
            mark = err.context_mark  # where the quote opens, not the end of the file
        where = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        raise InvalidInput(Problem(f"not valid YAML: {explain(err, text)}", where)) from None
    except yaml.YAMLError as err:
        raise InvalidInput(Problem(f"not valid YAML: {err}", Location(path, 1, 1))) from None
    except RecursionError:
        raise InvalidInput(Problem(f"nesting is deeper than {MAX_DEPTH} levels", Location(path, 1, 1))) from None
    finally:
        loader.dispose()
    return data, tree

