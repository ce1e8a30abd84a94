"""Declarations and values from Bicep tokens: objects, arrays, strings, loops and conditions are
parsed; any other value is kept as its source text."""

from __future__ import annotations

from pathlib import Path

from tests.support.bicep.lexer import Cursor
from tests.support.bicep.values import Arr, BicepFile, Cond, Decl, Expr, Loop, Obj, Value


def parse_file(path: Path) -> BicepFile:
    return BicepFile(path=path, decls=parse(path.read_text(encoding="utf-8"), str(path)))


def parse(source: str, name: str = "<bicep>") -> list[Decl]:
    return _Parser(source, name).parse_file()


class _Parser(Cursor):
    """Declarations and their values, on a cursor over the tokens."""

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
