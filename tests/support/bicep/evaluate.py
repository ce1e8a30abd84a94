"""A small part of Bicep's expression language, evaluated: literals, names, `!`, `&&`, `||`, `==`,
`!=`, `? :` and `empty()`, short-circuiting as ARM does."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.bicep.lexer import Lexer, Token
from tests.support.bicep.values import BicepSyntaxError


def evaluate(text: str, lookup: Callable[[str], object]) -> object:
    """The value of an expression; `lookup` gives the value of each name it reads."""
    return _Evaluator(text, lookup).run()


_BINARY_PRECEDENCE = {"||": 1, "&&": 2, "==": 3, "!=": 3}


class _Evaluator:
    """Precedence climbing over the lexer's tokens, short-circuiting as ARM does."""

    def __init__(self, text: str, lookup: Callable[[str], object]) -> None:
        self.text = text
        self.toks = [t for t in Lexer(text, "<expression>").tokens() if t.kind != "NL"]
        self.i = 0
        self.lookup = lookup

    def error(self, message: str) -> BicepSyntaxError:
        return BicepSyntaxError(f"cannot evaluate {self.text!r}: {message}")

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self, text: str | None = None) -> Token:
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
