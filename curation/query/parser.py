"""The query language's grammar, and parse errors that say where and what was expected."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from curation.errors import InvalidInput

MAX_QUERY_LENGTH = 10_000
MAX_DEPTH = 50

# Precedence, loosest first: OR, AND, NOT, comparison, + and -, *, unary minus.
# Keywords are case-insensitive and reserved only where a field or a value may start, so
# `metadata.and` is a key named "and". Rules written `left OP right` are left-recursive on
# purpose: LALR parses them without recursion, so long AND/OR chains cost no stack.
GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr | or_expr _OR and_expr -> or_
?and_expr: not_expr | and_expr _AND not_expr -> and_
?not_expr: atom | _NOT not_expr -> not_
?atom: comparison | "(" or_expr ")"
comparison: sum COMP_OP sum          -> compare
          | sum _IN value_list       -> in_
          | sum _NOT _IN value_list  -> not_in
value_list: "(" sum ("," sum)* ")"
?sum: product | sum (PLUS | MINUS) product -> arith
?product: unary | product STAR unary -> arith
?unary: operand | MINUS unary -> neg
?operand: path | literal | "(" sum ")"
path: FIELD (DOT key | "[" key "]")*
?key: NAME | STRING | QUOTED_NAME
?literal: STRING -> string
        | NUMBER -> number
        | TRUE -> true
        | FALSE -> false
        | NULL -> null

_OR.2: /or\b/i
_AND.2: /and\b/i
_NOT.2: /not\b/i
_IN.2: /in\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NULL.2: /null\b/i
FIELD: /(?!(?:and|or|not|in|true|false|null)\b)[A-Za-z_][A-Za-z0-9_]*/i
NAME: /[A-Za-z_][A-Za-z0-9_]*/
QUOTED_NAME: /`[^`\n]+`/
STRING: /"(?:[^"\\\n]|\\.)*"/ | /'(?:[^'\\\n]|\\.)*'/
NUMBER: /[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/
COMP_OP: "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
PLUS: "+"
MINUS: "-"
STAR: "*"
DOT: "."
%ignore /[ \t\r\n]+/
"""

# Two entry points: a whole query (a condition), and `sum` alone (a value per item, such
# as a sort key: `annotations.car`, `quality.blur`, `width * height`).
_PARSER = Lark(
    GRAMMAR,
    parser="lalr",
    start=["start", "sum"],
    propagate_positions=True,
    maybe_placeholders=False,
)

# What each terminal means to a person reading an error message.
_VALUE_TERMINALS = {"STRING", "NUMBER", "TRUE", "FALSE", "NULL"}
_CONNECTIVES = [
    ("_AND", "AND"),
    ("_OR", "OR"),
    ("COMMA", "','"),
    ("RPAR", "')'"),
    ("RSQB", "']'"),
    ("$END", "the end of the query"),
]
_COMPARISON = "a comparison operator (=, !=, <, <=, >, >=, IN)"
_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
}


class QueryError(InvalidInput):
    """A query that cannot be parsed or compiled, with where the problem is.

    `position` holds 1-based `line` and `column`, and 0-based `offset` and `end_offset`
    (in characters) of the offending text, so a UI can underline it; the same keys, and
    `expected`, are in the error's field entry.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str,
        offset: int,
        end_offset: int | None = None,
        expected: Iterable[str] = (),
        path: str = "query",
    ) -> None:
        line, column = line_column(text, offset)
        where = f"line {line}, column {column}" if "\n" in text else f"column {column}"
        message = message.replace("{where}", where)
        self.position = {
            "line": line,
            "column": column,
            "offset": offset,
            "end_offset": max(offset, end_offset if end_offset is not None else offset + 1),
        }
        self.expected = list(expected)
        field: dict[str, Any] = {"path": path, "message": message, **self.position}
        field["expected"] = self.expected
        super().__init__(message, fields=[cast(dict[str, str], field)])


def line_column(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of a 0-based character offset."""
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def parse(text: str, *, start: str = "start") -> Tree[Token]:
    """Parse query text into a tree; QueryError says where and what was expected.

    `start="sum"` parses a value instead of a condition (a sort key)."""
    if "\x00" in text:
        raise QueryError(
            "The query must not contain NUL characters (at {where}).",
            text=text,
            offset=text.index("\x00"),
        )
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(
            f"The query is longer than {MAX_QUERY_LENGTH} characters.",
            text=text,
            offset=MAX_QUERY_LENGTH,
            end_offset=len(text),
        )
    try:
        tree = _PARSER.parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc, start) from None
    _check_depth(text, tree)
    return tree


def unquote(token: Token, text: str) -> str:
    """The value of a STRING token ("..." or '...', with backslash escapes)."""
    body = str(token)[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        escape = body[i + 1]  # the token's pattern guarantees a character after "\"
        offset = (token.start_pos or 0) + 1 + i
        if escape == "u":
            digits = body[i + 2 : i + 6]
            if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise QueryError(
                    "Bad escape at {where}: \\u needs 4 hex digits.",
                    text=text,
                    offset=offset,
                    end_offset=offset + 2 + len(digits),
                )
            out.append(chr(int(digits, 16)))
            i += 6
            continue
        if escape not in _ESCAPES:
            raise QueryError(
                f"Bad escape '\\{escape}' at {{where}}: use \\\", \\', \\\\, \\n, \\t or \\uXXXX.",
                text=text,
                offset=offset,
                end_offset=offset + 2,
            )
        out.append(_ESCAPES[escape])
        i += 2
    value = "".join(out)
    if "\x00" in value:
        raise QueryError(
            "Strings must not contain NUL characters (at {where}).",
            text=text,
            offset=token.start_pos or 0,
            end_offset=token.end_pos,
        )
    return value


def _describe_expected(terminals: set[str]) -> list[str]:
    """Turn the parser's acceptable terminals into a few phrases a person understands."""
    if "COMP_OP" in terminals or "_IN" in terminals:
        return [_COMPARISON]
    if "NAME" in terminals:  # only after "." or "["
        return ['a name (quote names with spaces: "camera model")']
    if "FIELD" in terminals or terminals & _VALUE_TERMINALS:
        if "_NOT" in terminals:
            return ['a condition such as metadata.weather = "rain"']
        return ["a value"]
    found = [label for name, label in _CONNECTIVES if name in terminals]
    if found:
        return found
    return sorted(t.strip("_") for t in terminals)


def _acceptable(prefix: str, fallback: set[str], start: str = "start") -> set[str]:
    """The terminals that may follow `prefix`.

    Replays the prefix, because the parser state at the error has already made the
    reductions its lookahead implied, and LALR's merged lookaheads make the failed
    state's own set too wide or too narrow (after "(width > 1" it would leave out AND).
    """
    try:
        parser = _PARSER.parse_interactive(prefix, start=start)
        parser.exhaust_lexer()
        # lark leaves InteractiveParser.accepts() unannotated; it returns terminal names.
        return set(parser.accepts())  # type: ignore[no-untyped-call]
    except UnexpectedInput:
        return fallback


def _phrase(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _syntax_error(text: str, exc: UnexpectedInput, rule: str = "start") -> QueryError:
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        start = len(text) if token.type == "$END" else (token.start_pos or 0)
        expected = _describe_expected(_acceptable(text[:start], set(exc.expected), rule))
        if token.type == "$END":
            offset = len(text.rstrip())
            return QueryError(
                f"Unexpected end of query at {{where}}: expected {_phrase(expected)}.",
                text=text,
                offset=offset,
                end_offset=offset,
                expected=expected,
            )
        shown = str(token) if len(str(token)) <= 30 else str(token)[:27] + "..."
        return QueryError(
            f"Unexpected '{shown}' at {{where}}: expected {_phrase(expected)}."
            + _quote_hint(text, start),
            text=text,
            offset=start,
            end_offset=token.end_pos,
            expected=expected,
        )
    if isinstance(exc, UnexpectedCharacters):
        # lark types pos_in_stream by its base class default, None; this exception sets it.
        offset = exc.pos_in_stream  # type: ignore[assignment]
        char = text[offset]
        expected = _describe_expected(_acceptable(text[:offset], set(exc.allowed or ()), rule))
        if char in "\"'":
            return QueryError(
                f"Unterminated string starting at {{where}}: close it with {char}.",
                text=text,
                offset=offset,
                end_offset=len(text),
                expected=[char],
            )
        if char == "`":
            return QueryError(
                "Unterminated `quoted name` starting at {where}: close it with `.",
                text=text,
                offset=offset,
                end_offset=len(text),
                expected=["`"],
            )
        return QueryError(
            f"Unexpected character {char!r} at {{where}}: expected {_phrase(expected)}."
            + _quote_hint(text, offset),
            text=text,
            offset=offset,
            expected=expected,
        )
    if isinstance(exc, UnexpectedEOF):
        expected = _describe_expected(_acceptable(text, set(exc.expected), rule))
        return QueryError(
            f"Unexpected end of query at {{where}}: expected {_phrase(expected)}.",
            text=text,
            offset=len(text),
            end_offset=len(text),
            expected=expected,
        )
    return QueryError("The query cannot be parsed (at {where}).", text=text, offset=0)


_NAME_CHARS = re.compile(r"[A-Za-z0-9_]*")
_NAME_TAIL = re.compile(r"[^\s.=<>!(),\[\]\"'`]+")


def quote_name(name: str) -> str:
    """A name as a double-quoted string of the language."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _quote_hint(text: str, offset: int) -> str:
    """ " Quote it: ..." when the error is inside a name that needs quotes.

    `predictions[demo-detector]` stops at '-', `metadata.2020` at '2020': both are names
    that a grammar of plain names cannot read, and the fix is to quote them.
    """
    line_start = text.rfind("\n", 0, offset) + 1
    before = text[line_start:offset]
    bracket = before.rfind("[")
    if (
        bracket != -1
        and "]" not in before[bracket:]
        and not any(q in before[bracket:] for q in "\"'`")
    ):
        close = text.find("]", offset)
        newline = text.find("\n", offset)
        if close == -1 or (newline != -1 and newline < close):
            tail = _NAME_TAIL.match(text, offset)
            end = tail.end() if tail else offset
        else:
            end = close
        name = text[line_start + bracket + 1 : end].strip()
        head = re.search(r"[A-Za-z_][A-Za-z0-9_]*\s*$", before[:bracket])
        if not name or head is None:
            return ""
        return f" Quote the name: {head.group().strip()}[{quote_name(name)}]."
    # After a dot: the name started just before the error (metadata.camera-model) or at it
    # (metadata.2020).
    start = offset
    while start > line_start and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    if start == line_start or text[start - 1] != ".":
        return ""
    tail = _NAME_TAIL.match(text, offset)
    name = text[start : tail.end() if tail else offset]
    path = re.search(r"[A-Za-z_][A-Za-z0-9_.]*$", text[line_start : start - 1])
    if not name or path is None or (_NAME_CHARS.fullmatch(name) and not name[0].isdigit()):
        return ""
    return f" Quote the name: {path.group()}.{quote_name(name)}."


def _check_depth(text: str, tree: Tree[Token]) -> None:
    """Refuse deep nesting before the recursive compiler and the database meet it.

    A chain of the same operator (a AND b AND c) counts as one level: the compiler
    flattens it.
    """
    stack: list[tuple[Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            offset = node.meta.start_pos if not node.meta.empty else 0
            raise QueryError(
                f"The query nests too deeply at {{where}} (at most {MAX_DEPTH} levels).",
                text=text,
                offset=offset,
                end_offset=node.meta.end_pos,
            )
        for child in node.children:
            if isinstance(child, Tree):
                same_chain = child.data == node.data and node.data in ("and_", "or_")
                stack.append((child, depth if same_chain else depth + 1))
