"""Bicep source read into declarations and values, and a small part of its expressions evaluated.

One regex makes the tokens, each marked when it opens a line (what ends a declaration, a property
or an item). One parser reads declarations, objects, arrays, loops and conditions, and any other
value with one precedence-climbing expression parser that only reads it (`live=False`: the reader
keeps its source text) or computes it (`live=True`, for `evaluate`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from tests.support.bicep.values import Arr, BicepFile, BicepSyntaxError, Cond, Decl, Expr, Loop, Obj, Str, Value

# An interpolation `${...}` holds no new line, and no string or object that itself holds one.
_INTERPOLATION = r"\$\{(?:[^{}'\n]|'(?:[^'\\\n]|\\.)*'|\{[^{}'\n]*\})*\}"
_TOKEN = re.compile(
    r"(?P<SKIP>\s+|//[^\n]*|/\*.*?\*/)|(?P<MSTR>'''.*?''')|(?P<BAD>/\*|''')"
    rf"|(?P<STR>'(?:[^'\\\n$]|\\.|\$(?!\{{)|{_INTERPOLATION})*')|(?P<IDENT>[A-Za-z_][A-Za-z0-9_]*)|(?P<NUM>\d+)"
    r"|(?P<PUNCT>\?\?|&&|\|\||[=!<>]=|[{}\[\]()<>:,.?!=@+\-*/%])|(?P<ERROR>.)",
    re.DOTALL,
)
_STRING_PIECE = re.compile(r"\\u\{([0-9A-Fa-f]+)\}|\\([\\'nrt$])|(\$\{)|([^\\])", re.DOTALL)
_ESCAPES = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "$": "$"}
# Bicep's binary operators by precedence; `evaluate` computes only &&, ||, == and !=.
_BINARY = {"??": 1, "||": 2, "&&": 3, "==": 4, "!=": 4, "<": 5, "<=": 5, ">": 5, ">=": 5, "+": 6, "-": 6, "*": 7}
_BINARY |= {"/": 7, "%": 7}
_DECLARATIONS = ("targetScope", "metadata", "param", "var", "resource", "module", "output")


class Token(NamedTuple):
    kind: str  # STR, IDENT, NUM, PUNCT, EOF
    text: str
    start: int
    end: int
    line: int
    opens_line: bool  # the first token of its line (EOF too)
    value: Str | None = None


def parse_file(path: Path) -> BicepFile:
    return BicepFile(path=path, decls=parse(path.read_text(encoding="utf-8"), str(path)))


def parse(source: str, name: str = "<bicep>") -> list[Decl]:
    return _Parser(source, name).declarations()


def evaluate(text: str, lookup: Callable[[str], object]) -> object:
    """The value of an expression (literals, names, `!`, `&&`, `||`, `==`, `!=`, `? :`, `empty()`),
    short-circuiting as ARM does: a branch not taken is read, never evaluated. `lookup` gives the
    value of each name read; anything else is a BicepSyntaxError."""
    parser = _Parser(text, f"expression {text!r}", lookup)
    value = parser.expression(live=True)
    parser.take("EOF")
    return value


def _tokens(source: str, name: str) -> list[Token]:
    tokens: list[Token] = []
    line, last_line = 1, 0
    for m in _TOKEN.finditer(source):
        kind, text, value = m.lastgroup or "", m.group(), None
        if kind in ("BAD", "ERROR"):
            raise BicepSyntaxError(f"{name}:{line}: unexpected {source[m.start() : m.start() + 3]!r}")
        if kind == "MSTR":
            body = text[3:-3]
            kind, value = "STR", Str(text, body[2:] if body.startswith("\r\n") else body.removeprefix("\n"))
        elif kind == "STR":
            value = _string(text, f"{name}:{line}")
        if kind != "SKIP":
            tokens.append(Token(kind, text, m.start(), m.end(), line, line > last_line, value))
            last_line = line + text.count("\n")
        line += text.count("\n")
    return [*tokens, Token("EOF", "", len(source), len(source), line, True)]


def _string(raw: str, where: str) -> Str:
    """A single-quoted string's value: its escapes decoded, or None when it interpolates."""
    if not re.fullmatch(f"(?:{_STRING_PIECE.pattern})*", raw[1:-1], re.DOTALL):
        raise BicepSyntaxError(f"{where}: unknown escape in {raw}")
    pieces = _STRING_PIECE.findall(raw[1:-1])
    if any(opens for _, _, opens, _ in pieces):
        return Str(raw, None)
    return Str(raw, "".join(chr(int(u, 16)) if u else _ESCAPES[e] if e else c for u, e, _, c in pieces))


class _Cursor:
    """The tokens of a source, read one at a time."""

    def __init__(self, source: str, name: str, lookup: Callable[[str], object] | None = None) -> None:
        self.src, self.name, self.lookup = source, name, lookup
        self.toks = _tokens(source, name)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def next(self) -> Token:
        self.i += 1
        return self.peek(-1)

    def at(self, *texts: str) -> bool:
        return self.peek().kind in ("PUNCT", "IDENT") and self.peek().text in texts

    def goes_on(self, *texts: str) -> bool:
        """At one of `texts` on the same line: an expression goes on over no line break."""
        return self.at(*texts) and not self.peek().opens_line

    def accept(self, text: str) -> bool:
        found = self.at(text)
        self.i += found
        return found

    def take(self, want: str) -> Token:
        """The next token, which must be `want`: a punctuation or a keyword, or a kind of token."""
        if not (self.at(want) or self.peek().kind == want):
            raise self.error(f"expected {want}")
        return self.next()

    def error(self, message: str, tok: Token | None = None) -> BicepSyntaxError:
        tok = tok or self.peek()
        return BicepSyntaxError(f"{self.name}:{tok.line}: {message} (at {tok.text!r})")

    def span(self, read: Callable[[], object]) -> str:
        """The source text of what `read` reads."""
        first = self.i
        read()
        return self.src[self.toks[first].start : self.peek(-1).end]

    def items(self, close: str, item: Callable[[], Any]) -> list[Any]:
        """Items up to `close` (the opener already read), each ended by `,` or a new line."""
        found = []
        while not self.accept(close):
            found.append(item())
            if not (self.accept(",") or self.peek().opens_line or self.at(close)):
                raise self.error(f"expected a new line, ',' or {close!r}")
        return found


class _Expressions(_Cursor):
    """Precedence climbing: computed when `live`, only read when not (a branch not taken)."""

    def expression(self, live: bool) -> object:
        condition = self.binary(0, live)
        if not self.goes_on("?"):
            return condition
        self.next()
        if live and not isinstance(condition, bool):
            raise self.error("cannot evaluate a condition that is not a boolean")
        chosen = live and bool(condition)
        when_true = self.expression(live and chosen)
        self.take(":")
        when_false = self.expression(live and not chosen)
        return when_true if chosen else when_false

    def binary(self, minimum: int, live: bool) -> object:
        left = self.unary(live)
        while self.goes_on(*_BINARY) and _BINARY[self.peek().text] > minimum:
            op = self.next()
            if op.text in ("&&", "||"):
                decided = live and left is (op.text == "||")
                right = self.binary(_BINARY[op.text], live and not decided)
                left = left if decided or not live else right
            elif op.text in ("==", "!=") or not live:
                right = self.binary(_BINARY[op.text], live)
                left = (left == right) is (op.text == "==") if live else None
            else:
                raise self.error(f"cannot evaluate {op.text!r}", op)
        return left

    def unary(self, live: bool) -> object:
        if not self.at("!", "-"):
            return self.postfix(live)
        op = self.next()
        value = self.unary(live)
        if live and op.text == "-":
            raise self.error("cannot evaluate '-'", op)
        return (not value) if live else None

    def postfix(self, live: bool) -> object:
        value = self.primary(live)
        while self.goes_on(".", "["):
            if live:
                raise self.error(f"cannot evaluate {self.peek().text!r}")
            if self.next().text == "[":
                self.expression(live=False)
                self.take("]")
                continue
            self.take("IDENT")
            if self.goes_on("("):  # a namespace's function: sys.concat(...)
                self.next()
                self.items(")", lambda: self.expression(live=False))
        return value

    def structured(self) -> Obj | Arr | Loop:
        """An object, array or loop literal: the parser's."""
        raise NotImplementedError

    def primary(self, live: bool) -> object:
        tok = self.next()
        if tok.kind == "STR" and tok.value is not None:
            if live and tok.value.literal is None:
                raise self.error("cannot evaluate an interpolated string", tok)
            return tok.value.literal
        if tok.kind == "NUM":
            return int(tok.text)
        if tok.text in ("{", "[") and tok.kind == "PUNCT":
            if live:
                raise self.error("cannot evaluate an object or array literal", tok)
            self.i -= 1
            return self.structured()
        if tok.text == "(" and tok.kind == "PUNCT":
            value = self.expression(live)
            self.take(")")
            return value
        if tok.kind != "IDENT":
            raise self.error("expected a value", tok)
        if self.goes_on("("):
            self.next()
            args = self.items(")", lambda: self.expression(live))
            if live and (tok.text != "empty" or len(args) != 1):
                raise self.error(f"cannot evaluate the function {tok.text}()", tok)
            return args[0] in ("", None) or args[0] == [] or args[0] == {} if live else None
        if tok.text in ("true", "false"):
            return tok.text == "true"
        return self.lookup(tok.text) if live and self.lookup else None


class _Parser(_Expressions):
    """Declarations and the values they hold."""

    def declarations(self) -> list[Decl]:
        decls: list[Decl] = []
        while self.peek().kind != "EOF":
            decls.append(self.declaration())
            if not self.peek().opens_line:
                raise self.error("expected the end of the line")
        return decls

    def declaration(self) -> Decl:
        decorators = self.decorators()
        tok = self.take("IDENT")
        if tok.text not in _DECLARATIONS:
            raise self.error(f"unknown declaration {tok.text!r}", tok)
        if tok.text == "targetScope":
            self.take("=")
            return Decl("targetScope", "targetScope", value=self.value(), line=tok.line)
        name = self.take("IDENT").text
        if tok.text in ("resource", "module"):
            return self.resource_or_module(tok.text, name, decorators, tok.line)
        type_text = self.take("IDENT").text if tok.text in ("param", "output") else ""
        value = None
        if tok.text != "param" or self.at("="):
            self.take("=")
            value = self.value()
        return Decl(tok.text, name, type_text, value, decorators, line=tok.line)

    def decorators(self) -> dict[str, list[Value]]:
        found: dict[str, list[Value]] = {}
        while self.accept("@"):
            name = self.take("IDENT").text
            if self.accept("."):  # @sys.description(...)
                name = self.take("IDENT").text
            self.take("(")
            found[name] = self.items(")", self.value)
        return found

    def resource_or_module(self, keyword: str, name: str, decorators: dict[str, list[Value]], line: int) -> Decl:
        type_tok = self.take("STR")
        if type_tok.value is None or type_tok.value.literal is None:
            raise self.error(f"{keyword} type or path must be a plain string", type_tok)
        existing = self.accept("existing")
        self.take("=")
        if not isinstance(value := self.value(), (Obj, Loop, Cond)):
            raise self.error("expected an object, a condition or a loop")
        return Decl(keyword, name, type_tok.value.literal, value, decorators, existing, line)

    def value(self) -> Value:
        """An object, array, loop, condition or string; any other value read as an expression and
        kept as its source text."""
        first, parsed = self.i, None
        if self.accept("if"):
            self.take("(")
            condition = self.span(lambda: self.expression(live=False))
            self.take(")")
            if not isinstance(body := self.value(), Obj):
                raise self.error("expected the object of a conditional resource or module")
            return Cond(condition, body)
        if self.at("{", "["):
            parsed = self.structured()
        elif self.peek().kind == "STR":
            parsed = self.next().value
        if parsed is not None and (self.peek().opens_line or self.at(",", ")", "]", "}")):
            return parsed
        self.i = first
        return Expr(self.span(lambda: self.expression(live=False)))

    def structured(self) -> Obj | Arr | Loop:
        if self.at("{"):
            return self.obj()
        if self.at("[") and self.peek(1).text == "for":
            return self.loop()
        self.take("[")
        return Arr(self.items("]", self.value))

    def obj(self) -> Obj:
        result = Obj()
        self.take("{")
        self.items("}", lambda: self.property(result))
        return result

    def property(self, into: Obj) -> None:
        self.decorators()  # decorators on properties only document them
        key_tok = self.next()
        if key_tok.text == "resource" and self.peek().kind == "IDENT":
            into.nested.append(self.resource_or_module("resource", self.next().text, {}, key_tok.line))
            return
        if key_tok.kind == "STR" and key_tok.value is not None:
            key = key_tok.value.raw if key_tok.value.literal is None else key_tok.value.literal
        elif key_tok.kind == "IDENT":
            key = key_tok.text
        else:
            raise self.error("expected a property name", key_tok)
        if key in into.props:
            raise self.error(f"duplicate property {key!r}", key_tok)
        self.take(":")
        into.props[key] = self.value()

    def loop(self) -> Loop:
        self.take("[")
        self.take("for")
        header = self.span(lambda: (self.take("IDENT"), self.take("in"), self.expression(live=False)))
        self.take(":")
        body = self.value()
        self.take("]")
        return Loop(header, body)
