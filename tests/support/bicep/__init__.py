"""A small reader of Bicep, enough to check infra/ without the Bicep CLI (which installs by
downloading a binary).

It reads the declarations infra/ uses (targetScope, metadata, param, var, resource, module and
output) with their decorators, and parses values into:

    Obj    an object literal: ordered properties, plus any nested resource declarations
    Arr    an array literal
    Str    a string; `literal` is its text, or None when it interpolates `${...}`
    Loop   `[for name in expression: body]`
    Cond   `if (condition) {...}`, the value of a conditional resource or module
    Expr   any other value (a reference, a call, an operator): parsed, and kept as its source text

A check that needs the value behind an Expr resolves it through `var` declarations or module
parameters itself. `evaluate` computes literals, names, `!`, `&&`, `||`, `==`, `!=`, `? :` and
`empty()`, enough to run a deployment-time guard for every combination of its parameters.

Anything else is a BicepSyntaxError naming the line, so that a construct new to infra/ is a clear
error, never a silent wrong answer: `type`, `func`, `import` and the other declarations; a type
that is not one name (`string[]`, `'a' | 'b'`, `resource '...'`); `for (item, index) in`; `.?`
and lambdas; an expression or a `? :` going on over a line break (except inside brackets between
items); a new line inside `${...}`; in `evaluate`, any other operator or function.

Why not pycep-parser, the Bicep parser checkov uses (in .venv-infra): its output gives a string
literal and a reference the same Python string (`name: 'default'` and `name: defaultName` both
read "default"); it reads `a && b ? x : y` as `a && (b ? x : y)` (main.bicep's `authentication`
guard among them); and its grammar knows a fixed list of functions. Checkov's policies run on it.
"""

from tests.support.bicep.reader import evaluate, parse, parse_file
from tests.support.bicep.values import Arr, BicepFile, BicepSyntaxError, Cond, Decl, Expr, Loop, Obj, Str, Value
from tests.support.bicep.values import literal as literal

__all__ = ["Arr", "BicepFile", "BicepSyntaxError", "Cond", "Decl", "Expr", "Loop", "Obj", "Str", "Value"]
__all__ += ["evaluate", "literal", "parse", "parse_file"]
