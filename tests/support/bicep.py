"""A small reader of Bicep, enough to check infra/ without the Bicep CLI.

It reads declarations (targetScope, metadata, param, var, resource, module, output, and type, func
and import, which it keeps as text) with their decorators, and parses values into:

    Obj    an object literal: ordered properties, plus any nested resource declarations
    Arr    an array literal
    Str    a string; `literal` is its text, or None when it interpolates `${...}`
    Loop   `[for ... : body]`
    Cond   `if (condition) body`, the value of a conditional resource or module
    Expr   anything else (a reference, a call, an operator), kept as its source text

Values that are not literals stay text: a check that needs one resolves it through `var`
declarations or module parameters itself, and fails when it cannot. The reader raises
BicepSyntaxError, naming the line, on anything it does not understand, rather than guess.

`evaluate` computes a small part of the expression language (literals, names, `!`, `&&`, `||`,
`==`, `!=`, `? :` and `empty()`), enough to run a deployment-time guard for every combination of
its parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_MULTI_CHAR_PUNCT = ("==", "!=", "<=", ">=", "&&", "||", "??", ".?", "=>", "::", "=~", "!~")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = set(_OPENERS.values())


class BicepSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Str:
    raw: str
    literal: str | None  # None when the string interpolates an expression

    def __repr__(self) -> str:
        return f"Str({self.raw})"


@dataclass(frozen=True)
class Expr:
    text: str


@dataclass
class Obj:
    props: dict[str, Value] = field(default_factory=dict)
    nested: list[Decl] = field(default_factory=list)

    def get(self, dotted: str) -> Value | None:
        """The value at a dotted path of object keys, or None when a step is missing."""
        node: Value | None = self
        for key in dotted.split("."):
            if not isinstance(node, Obj) or key not in node.props:
                return None
            node = node.props[key]
        return node


@dataclass
class Arr:
    items: list[Value]


@dataclass
class Loop:
    header: str
    body: Value


@dataclass
class Cond:
    condition: str
    body: Value


Value = Obj | Arr | Str | Expr | Loop | Cond


@dataclass
class Decl:
    kind: str  # targetScope, metadata, param, var, resource, module, output, type, func, import
    name: str
    type: str = ""  # param/output type; 'Type@apiVersion' of a resource; path of a module
    value: Value | None = None  # default of a param, value of anything else
    decorators: dict[str, list[Value]] = field(default_factory=dict)
    existing: bool = False
    line: int = 0

    @property
    def body(self) -> Obj | None:
        """The object of a resource or module, through a condition or loop."""
        value = self.value
        while isinstance(value, (Cond, Loop)):
            value = value.body
        return value if isinstance(value, Obj) else None

    @property
    def condition(self) -> str | None:
        return self.value.condition if isinstance(self.value, Cond) else None

    @property
    def resource_type(self) -> str:
        return self.type.split("@", 1)[0]

    @property
    def api_version(self) -> str:
        return self.type.split("@", 1)[1] if "@" in self.type else ""


@dataclass
class BicepFile:
    path: Path
    decls: list[Decl]

    def _of(self, kind: str) -> dict[str, Decl]:
        return {d.name: d for d in self.decls if d.kind == kind}

    @property
    def params(self) -> dict[str, Decl]:
        return self._of("param")

    @property
    def variables(self) -> dict[str, Decl]:
        return self._of("var")

    @property
    def outputs(self) -> dict[str, Decl]:
        return self._of("output")

    @property
    def modules(self) -> dict[str, Decl]:
        return self._of("module")

    @property
    def resources(self) -> list[Decl]:
        """Every resource declaration, nested ones included."""
        found: list[Decl] = []

        def walk(decls: list[Decl]) -> None:
            for d in decls:
                if d.kind == "resource":
                    found.append(d)
                    if d.body is not None:
                        walk(d.body.nested)

        walk(self.decls)
        return found

    @property
    def target_scope(self) -> str:
        for d in self.decls:
            if d.kind == "targetScope" and isinstance(d.value, Str):
                return d.value.literal or ""
        return "resourceGroup"


@dataclass(frozen=True)
class _Token:
    kind: str  # NL, STR, IDENT, NUM, PUNCT, EOF
    text: str
    start: int
    end: int
    line: int
    value: Str | None = None


def parse_file(path: Path) -> BicepFile:
    return BicepFile(path=path, decls=parse(path.read_text(encoding="utf-8"), str(path)))


def parse(source: str, name: str = "<bicep>") -> list[Decl]:
    return _Parser(source, name).parse_file()


def literal(value: Value | None) -> str | int | bool | None:
    """A string, integer or boolean literal as a Python value; None for anything else."""
    if isinstance(value, Str):
        return value.literal
    if isinstance(value, Expr):
        if value.text in ("true", "false"):
            return value.text == "true"
        if re.fullmatch(r"-?\d+", value.text):
            return int(value.text)
    return None


class _Lexer:
    def __init__(self, source: str, name: str) -> None:
        self.src = source
        self.name = name
        self.pos = 0
        self.line = 1

    def error(self, message: str) -> BicepSyntaxError:
        return BicepSyntaxError(f"{self.name}:{self.line}: {message}")

    def tokens(self) -> list[_Token]:
        out: list[_Token] = []
        src = self.src
        while self.pos < len(src):
            c = src[self.pos]
            if c in " \t\r":
                self.pos += 1
            elif c == "\n":
                out.append(_Token("NL", "\n", self.pos, self.pos + 1, self.line))
                self.line += 1
                self.pos += 1
            elif src.startswith("//", self.pos):
                end = src.find("\n", self.pos)
                self.pos = len(src) if end < 0 else end
            elif src.startswith("/*", self.pos):
                end = src.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("unterminated comment")
                self.line += src.count("\n", self.pos, end)
                self.pos = end + 2
            elif src.startswith("'''", self.pos):
                end = src.find("'''", self.pos + 3)
                if end < 0:
                    raise self.error("unterminated multi-line string")
                start, line = self.pos, self.line
                text = src[self.pos + 3 : end]
                if text.startswith("\r\n"):
                    text = text[2:]
                elif text.startswith("\n"):
                    text = text[1:]
                self.line += src.count("\n", self.pos, end)
                self.pos = end + 3
                out.append(
                    _Token("STR", src[start : self.pos], start, self.pos, line, Str(src[start : self.pos], text))
                )
            elif c == "'":
                start, line = self.pos, self.line
                value = self._string()
                out.append(_Token("STR", value.raw, start, self.pos, line, value))
            elif c.isalpha() or c == "_":
                m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(src, self.pos)
                assert m is not None
                out.append(_Token("IDENT", m.group(), self.pos, m.end(), self.line))
                self.pos = m.end()
            elif c.isdigit():
                m = re.compile(r"\d+(\.\d+)?").match(src, self.pos)
                assert m is not None
                out.append(_Token("NUM", m.group(), self.pos, m.end(), self.line))
                self.pos = m.end()
            else:
                op = next((p for p in _MULTI_CHAR_PUNCT if src.startswith(p, self.pos)), c)
                if op == c and c not in "{}[]()<>:,.?!=@+-*/%|&":
                    raise self.error(f"unexpected character {c!r}")
                out.append(_Token("PUNCT", op, self.pos, self.pos + len(op), self.line))
                self.pos += len(op)
        out.append(_Token("EOF", "", len(src), len(src), self.line))
        return out

    def _string(self) -> Str:
        """A single-quoted string at self.pos, with escapes and ${...} interpolations."""
        src = self.src
        start = self.pos
        self.pos += 1
        text: list[str] = []
        interpolated = False
        escapes = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "$": "$"}
        while True:
            if self.pos >= len(src) or src[self.pos] == "\n":
                raise self.error("unterminated string")
            c = src[self.pos]
            if c == "\\":
                nxt = src[self.pos + 1 : self.pos + 2]
                if nxt in escapes:
                    text.append(escapes[nxt])
                    self.pos += 2
                elif nxt == "u" and src[self.pos + 2 : self.pos + 3] == "{":
                    end = src.index("}", self.pos)
                    text.append(chr(int(src[self.pos + 3 : end], 16)))
                    self.pos = end + 1
                else:
                    raise self.error(f"unknown escape \\{nxt}")
            elif c == "'":
                self.pos += 1
                raw = src[start : self.pos]
                return Str(raw, None if interpolated else "".join(text))
            elif src.startswith("${", self.pos):
                interpolated = True
                self.pos += 2
                self._skip_interpolation()
            else:
                text.append(c)
                self.pos += 1

    def _skip_interpolation(self) -> None:
        depth = 0
        while self.pos < len(self.src):
            c = self.src[self.pos]
            if c == "'":
                self._string()
                continue
            if c == "\n":
                self.line += 1
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0:
                    self.pos += 1
                    return
                depth -= 1
            self.pos += 1
        raise self.error("unterminated interpolation")


class _Parser:
    def __init__(self, source: str, name: str) -> None:
        self.src = source
        self.name = name
        self.toks = _Lexer(source, name).tokens()
        self.i = 0

    # -- token helpers

    def peek(self, offset: int = 0) -> _Token:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def next(self) -> _Token:
        tok = self.peek()
        self.i += 1
        return tok

    def error(self, message: str, tok: _Token | None = None) -> BicepSyntaxError:
        tok = tok or self.peek()
        return BicepSyntaxError(f"{self.name}:{tok.line}: {message} (at {tok.text!r})")

    def expect(self, kind: str, text: str | None = None) -> _Token:
        tok = self.next()
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.error(f"expected {text or kind}", tok)
        return tok

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok.kind in ("PUNCT", "IDENT") and tok.text == text

    def skip_newlines(self) -> None:
        while self.peek().kind == "NL":
            self.i += 1

    def _next_significant(self) -> _Token:
        j = self.i
        while self.toks[j].kind == "NL":
            j += 1
        return self.toks[j]

    # -- declarations

    def parse_file(self) -> list[Decl]:
        decls: list[Decl] = []
        while True:
            self.skip_newlines()
            if self.peek().kind == "EOF":
                return decls
            decls.append(self.declaration())
            if self.peek().kind not in ("NL", "EOF"):
                raise self.error("expected the end of the line")

    def declaration(self) -> Decl:
        decorators = self.decorators()
        tok = self.expect("IDENT")
        keyword = tok.text
        if keyword == "targetScope":
            self.expect("PUNCT", "=")
            return Decl("targetScope", "targetScope", value=self.value(), line=tok.line)
        if keyword in ("param", "output"):
            name = self.expect("IDENT").text
            type_text = self.raw_until({"="}, allow_end=keyword == "param")
            value = None
            if self.at("="):
                self.next()
                value = self.value()
            return Decl(keyword, name, type_text, value, decorators, line=tok.line)
        if keyword in ("var", "metadata"):
            name = self.expect("IDENT").text
            self.expect("PUNCT", "=")
            return Decl(keyword, name, value=self.value(), decorators=decorators, line=tok.line)
        if keyword in ("resource", "module"):
            return self.resource_or_module(keyword, decorators, tok.line)
        if keyword in ("type", "func", "import", "using", "extension"):
            text = self.raw_until(set(), allow_end=True)
            return Decl(keyword, text.split(" ", 1)[0], value=Expr(text), decorators=decorators, line=tok.line)
        raise self.error(f"unknown declaration {keyword!r}", tok)

    def decorators(self) -> dict[str, list[Value]]:
        found: dict[str, list[Value]] = {}
        while self.at("@"):
            self.next()
            name = self.expect("IDENT").text
            if self.at("."):  # @sys.description(...)
                self.next()
                name = self.expect("IDENT").text
            self.expect("PUNCT", "(")
            args: list[Value] = []
            self.skip_newlines()
            while not self.at(")"):
                args.append(self.value())
                self.skip_newlines()
                if self.at(","):
                    self.next()
                    self.skip_newlines()
            self.expect("PUNCT", ")")
            found[name] = args
            self.skip_newlines()
        return found

    def resource_or_module(self, keyword: str, decorators: dict[str, list[Value]], line: int) -> Decl:
        name = self.expect("IDENT").text
        type_tok = self.expect("STR")
        assert type_tok.value is not None
        if type_tok.value.literal is None:
            raise self.error(f"{keyword} type or path must be a plain string", type_tok)
        existing = False
        if self.at("existing"):
            self.next()
            existing = True
        self.expect("PUNCT", "=")
        return Decl(keyword, name, type_tok.value.literal, self.resource_value(), decorators, existing, line)

    def resource_value(self) -> Value:
        if self.at("if"):
            self.next()
            condition = self.parenthesized()
            self.skip_newlines()
            return Cond(condition, self.value())
        value = self.value()
        if not isinstance(value, (Obj, Loop)):
            raise self.error("expected an object, a condition or a loop")
        return value

    def parenthesized(self) -> str:
        open_tok = self.expect("PUNCT", "(")
        depth = 1
        while depth:
            tok = self.next()
            if tok.kind == "EOF":
                raise self.error("unbalanced parentheses", open_tok)
            if tok.text in _OPENERS and tok.kind == "PUNCT":
                depth += 1
            elif tok.text in _CLOSERS and tok.kind == "PUNCT":
                depth -= 1
        return self.src[open_tok.end : self.peek(-1).start].strip()

    # -- values

    def value(self) -> Value:
        start = self.i
        tok = self.peek()
        parsed: Value | None = None
        if tok.kind == "PUNCT" and tok.text == "{":
            parsed = self.obj()
        elif tok.kind == "PUNCT" and tok.text == "[":
            following = self.toks[self.i + 1 :]
            first = next((t for t in following if t.kind != "NL"), None)
            parsed = self.loop() if first is not None and first.text == "for" else self.arr()
        elif tok.kind == "STR":
            self.next()
            parsed = tok.value
        if parsed is not None and self.at_value_end():
            return parsed
        self.i = start
        return Expr(self.raw_until(set(), allow_end=True))

    def at_value_end(self) -> bool:
        tok = self.peek()
        if tok.kind == "EOF" or (tok.kind == "PUNCT" and tok.text in {",", ")", "]", "}"}):
            return True
        if tok.kind == "NL":
            return not self._continues()
        return False

    def _continues(self) -> bool:
        """A value goes on over a line break when the next line opens with `?` or `:`."""
        nxt = self._next_significant()
        return nxt.kind == "PUNCT" and nxt.text in ("?", ":")

    def raw_until(self, stops: set[str], allow_end: bool) -> str:
        """Source text up to a top-level stop token, `,`, a closing bracket or the end of the line."""
        first = self.peek()
        depth = 0
        last: _Token | None = None
        while True:
            tok = self.peek()
            if tok.kind == "EOF":
                break
            if depth == 0:
                if tok.kind == "PUNCT" and (tok.text in stops or tok.text == "," or tok.text in _CLOSERS):
                    break
                if tok.kind == "NL" and not self._continues():
                    break
            if tok.kind == "PUNCT" and tok.text in _OPENERS:
                depth += 1
            elif tok.kind == "PUNCT" and tok.text in _CLOSERS:
                depth -= 1
            if tok.kind != "NL":
                last = tok
            self.next()
        if last is None:
            if allow_end:
                return ""
            raise self.error("expected a value", first)
        return self.src[first.start : last.end].strip()

    def obj(self) -> Obj:
        self.expect("PUNCT", "{")
        result = Obj()
        while True:
            self.skip_newlines()
            if self.at("}"):
                self.next()
                return result
            self.decorators()  # decorators on properties only document them
            tok = self.peek()
            if tok.kind == "IDENT" and tok.text == "resource" and self.peek(1).kind == "IDENT":
                self.next()
                result.nested.append(self.resource_or_module("resource", {}, tok.line))
            else:
                key_tok = self.next()
                if key_tok.kind == "IDENT":
                    key = key_tok.text
                elif key_tok.kind == "STR" and key_tok.value is not None:
                    key = key_tok.value.literal if key_tok.value.literal is not None else key_tok.value.raw
                else:
                    raise self.error("expected a property name", key_tok)
                if key in result.props:
                    raise self.error(f"duplicate property {key!r}", key_tok)
                self.expect("PUNCT", ":")
                self.skip_newlines()
                result.props[key] = self.value()
            if self.at(","):
                self.next()
            elif not (self.peek().kind == "NL" or self.at("}")):
                raise self.error("expected a new line, ',' or '}' after a property")

    def arr(self) -> Arr:
        self.expect("PUNCT", "[")
        items: list[Value] = []
        while True:
            self.skip_newlines()
            if self.at("]"):
                self.next()
                return Arr(items)
            items.append(self.value())
            if self.at(","):
                self.next()
            elif not (self.peek().kind == "NL" or self.at("]")):
                raise self.error("expected a new line, ',' or ']' after an item")

    def loop(self) -> Loop:
        self.expect("PUNCT", "[")
        self.skip_newlines()
        self.expect("IDENT", "for")
        header = self.raw_until({":"}, allow_end=False)
        self.expect("PUNCT", ":")
        self.skip_newlines()
        body = self.resource_value() if self.at("if") else self.value()
        self.skip_newlines()
        self.expect("PUNCT", "]")
        return Loop(header, body)


def evaluate(text: str, lookup: Callable[[str], object]) -> object:
    """The value of an expression; `lookup` gives the value of each name it reads."""
    return _Evaluator(text, lookup).run()


_BINARY_PRECEDENCE = {"||": 1, "&&": 2, "==": 3, "!=": 3}


class _Evaluator:
    """Precedence climbing over the lexer's tokens, short-circuiting as ARM does."""

    def __init__(self, text: str, lookup: Callable[[str], object]) -> None:
        self.text = text
        self.toks = [t for t in _Lexer(text, "<expression>").tokens() if t.kind != "NL"]
        self.i = 0
        self.lookup = lookup

    def error(self, message: str) -> BicepSyntaxError:
        return BicepSyntaxError(f"cannot evaluate {self.text!r}: {message}")

    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self, text: str | None = None) -> _Token:
        tok = self.toks[self.i]
        if text is not None and tok.text != text:
            raise self.error(f"expected {text!r}, found {tok.text!r}")
        self.i += 1
        return tok

    def run(self) -> object:
        value = self.expression(live=True)
        if self.peek().kind != "EOF":
            raise self.error(f"unexpected {self.peek().text!r}")
        return value

    # `live` is False on a branch that is not taken: parsed, never evaluated.
    def expression(self, live: bool) -> object:
        condition = self.binary(0, live)
        if self.peek().text != "?":
            return condition
        self.take("?")
        if live and not isinstance(condition, bool):
            raise self.error("a condition that is not a boolean")
        chosen = bool(condition) if live else False
        when_true = self.expression(live and chosen)
        self.take(":")
        when_false = self.expression(live and not chosen)
        return when_true if chosen else when_false

    def binary(self, minimum: int, live: bool) -> object:
        left = self.unary(live)
        while self.peek().kind == "PUNCT" and _BINARY_PRECEDENCE.get(self.peek().text, 0) > minimum:
            op = self.take().text
            if op in ("&&", "||"):
                decided = live and left is (op == "||")
                right = self.binary(_BINARY_PRECEDENCE[op], live and not decided)
                left = left if decided or not live else right
            else:
                right = self.binary(_BINARY_PRECEDENCE[op], live)
                left = (left == right) is (op == "==") if live else None
        return left

    def unary(self, live: bool) -> object:
        if self.peek().text == "!":
            self.take()
            value = self.unary(live)
            return (not value) if live else None
        return self.primary(live)

    def primary(self, live: bool) -> object:
        tok = self.take()
        if tok.kind == "STR":
            assert tok.value is not None
            if tok.value.literal is None:
                raise self.error("an interpolated string")
            return tok.value.literal
        if tok.kind == "NUM":
            return int(tok.text)
        if tok.text == "(":
            value = self.expression(live)
            self.take(")")
            return value
        if tok.kind != "IDENT":
            raise self.error(f"unexpected {tok.text!r}")
        if tok.text in ("true", "false"):
            return tok.text == "true"
        if self.peek().text != "(":
            return self.lookup(tok.text) if live else None
        self.take("(")
        args = [self.expression(live)] if self.peek().text != ")" else []
        while self.peek().text == ",":
            self.take(",")
            args.append(self.expression(live))
        self.take(")")
        if not live:
            return None
        if tok.text == "empty" and len(args) == 1:
            return args[0] in ("", None) or args[0] == [] or args[0] == {}
        raise self.error(f"the function {tok.text}()")
