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

Why not pycep-parser, the Bicep parser checkov uses (0.5.1 is in .venv-infra): its output gives a
string literal and a reference the same Python string (`name: 'default'` and `name: defaultName`
both read "default"), so a check of a literal would pass on a reference of that name; it reads
`a && b ? x : y` as `a && (b ? x : y)` (main.bicep's `authentication` guard among them), so the
guard would be evaluated wrong; and its grammar knows a fixed list of functions, so `items()`,
`objectKeys()` or a user-defined `func` fail the whole file. Checkov's policies run on it still.
"""

from tests.support.bicep.evaluate import evaluate
from tests.support.bicep.reader import parse, parse_file
from tests.support.bicep.values import (
    Arr,
    BicepFile,
    BicepSyntaxError,
    Cond,
    Decl,
    Expr,
    Loop,
    Obj,
    Str,
    Value,
    literal,
)

__all__ = [
    "Arr",
    "BicepFile",
    "BicepSyntaxError",
    "Cond",
    "Decl",
    "Expr",
    "Loop",
    "Obj",
    "Str",
    "Value",
    "evaluate",
    "literal",
    "parse",
    "parse_file",
]
