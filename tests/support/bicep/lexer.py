"""Bicep source as tokens: new lines, strings (escapes and `${...}` interpolations), names,
numbers and punctuation, comments dropped; and a cursor that reads them one at a time and gives
the source text of what they span."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.support.bicep.values import BicepSyntaxError, Str

_MULTI_CHAR_PUNCT = ("==", "!=", "<=", ">=", "&&", "||", "??", ".?", "=>", "::", "=~", "!~")
OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = set(OPENERS.values())
# Blanks and comments; a block comment may span lines.
_SKIPPED = re.compile(r"[ \t\r]+|//[^\n]*|/\*.*?\*/", re.DOTALL)
_KINDS = {"ident": "IDENT", "num": "NUM", "punct": "PUNCT"}
_WORD = re.compile(
    r"(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>\d+(?:\.\d+)?)|(?P<punct>"
    + "|".join(re.escape(p) for p in _MULTI_CHAR_PUNCT)
    + r"|[{}\[\]()<>:,.?!=@+\-*/%|&])"
)


@dataclass(frozen=True)
class Token:
    kind: str  # NL, STR, IDENT, NUM, PUNCT, EOF
    text: str
    start: int
    end: int
    line: int
    value: Str | None = None


class Lexer:
    def __init__(self, source: str, name: str) -> None:
        self.src = source
        self.name = name
        self.pos = 0
        self.line = 1

    def error(self, message: str) -> BicepSyntaxError:
        return BicepSyntaxError(f"{self.name}:{self.line}: {message}")

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        src = self.src
        while self.pos < len(src):
            if skipped := _SKIPPED.match(src, self.pos):
                self.line += skipped.group().count("\n")
                self.pos = skipped.end()
            elif src.startswith("/*", self.pos):
                raise self.error("unterminated comment")
            elif src[self.pos] == "\n":
                out.append(Token("NL", "\n", self.pos, self.pos + 1, self.line))
                self.line += 1
                self.pos += 1
            elif src.startswith("'''", self.pos):
                end = src.find("'''", self.pos + 3)
                if end < 0:
                    raise self.error("unterminated multi-line string")
                start, line, self.pos = self.pos, self.line, end + 3
                text = src[start + 3 : end]
                text = text[2:] if text.startswith("\r\n") else text.removeprefix("\n")
                self.line += src.count("\n", start, end)
                out.append(Token("STR", src[start : self.pos], start, self.pos, line, Str(src[start : self.pos], text)))
            elif src[self.pos] == "'":
                start, line = self.pos, self.line
                value = self._string()
                out.append(Token("STR", value.raw, start, self.pos, line, value))
            elif word := _WORD.match(src, self.pos):
                out.append(Token(_KINDS[word.lastgroup or ""], word.group(), self.pos, word.end(), self.line))
                self.pos = word.end()
            else:
                raise self.error(f"unexpected character {src[self.pos]!r}")
        out.append(Token("EOF", "", len(src), len(src), self.line))
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


class Cursor:
    """The tokens of a source, read one at a time, and the source text of what they span."""

    def __init__(self, source: str, name: str) -> None:
        self.src = source
        self.name = name
        self.toks = Lexer(source, name).tokens()
        self.i = 0

    def peek(self, offset: int = 0) -> Token:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> BicepSyntaxError:
        tok = tok or self.peek()
        return BicepSyntaxError(f"{self.name}:{tok.line}: {message} (at {tok.text!r})")

    def expect(self, kind: str, text: str | None = None) -> Token:
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

    def _next_significant(self) -> Token:
        j = self.i
        while self.toks[j].kind == "NL":
            j += 1
        return self.toks[j]

    def parenthesized(self) -> str:
        open_tok = self.expect("PUNCT", "(")
        depth = 1
        while depth:
            tok = self.next()
            if tok.kind == "EOF":
                raise self.error("unbalanced parentheses", open_tok)
            if tok.text in OPENERS and tok.kind == "PUNCT":
                depth += 1
            elif tok.text in CLOSERS and tok.kind == "PUNCT":
                depth -= 1
        return self.src[open_tok.end : self.peek(-1).start].strip()

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
        last: Token | None = None
        while True:
            tok = self.peek()
            if tok.kind == "EOF":
                break
            if depth == 0:
                if tok.kind == "PUNCT" and (tok.text in stops or tok.text == "," or tok.text in CLOSERS):
                    break
                if tok.kind == "NL" and not self._continues():
                    break
            if tok.kind == "PUNCT" and tok.text in OPENERS:
                depth += 1
            elif tok.kind == "PUNCT" and tok.text in CLOSERS:
                depth -= 1
            if tok.kind != "NL":
                last = tok
            self.next()
        if last is None:
            if allow_end:
                return ""
            raise self.error("expected a value", first)
        return self.src[first.start : last.end].strip()
