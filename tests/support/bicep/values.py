"""What the reader makes of Bicep: declarations, their values, and a file of them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


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
            node = node.props.get(key) if isinstance(node, Obj) else None
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
    body: Obj


Value = Obj | Arr | Str | Expr | Loop | Cond


@dataclass
class Decl:
    kind: str  # targetScope, metadata, param, var, resource, module, output
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
    params: dict[str, Decl] = field(init=False)
    variables: dict[str, Decl] = field(init=False)
    outputs: dict[str, Decl] = field(init=False)
    modules: dict[str, Decl] = field(init=False)
    resources: list[Decl] = field(init=False)  # every resource declaration, nested ones included

    def __post_init__(self) -> None:
        def of(kind: str) -> dict[str, Decl]:
            return {d.name: d for d in self.decls if d.kind == kind}

        def walk(decls: list[Decl]) -> Iterator[Decl]:
            for d in decls:
                if d.kind == "resource":
                    yield d
                    yield from walk(d.body.nested if d.body else [])

        self.params, self.variables, self.outputs, self.modules = of("param"), of("var"), of("output"), of("module")
        self.resources = list(walk(self.decls))

    @property
    def target_scope(self) -> str:
        scopes = [d.value.literal or "" for d in self.decls if d.kind == "targetScope" and isinstance(d.value, Str)]
        return scopes[0] if scopes else "resourceGroup"


def literal(value: Value | None) -> str | int | bool | None:
    """A string, integer or boolean literal as a Python value; None for anything else."""
    if isinstance(value, Str):
        return value.literal
    if isinstance(value, Expr) and value.text in ("true", "false"):
        return value.text == "true"
    if isinstance(value, Expr) and re.fullmatch(r"-?\d+", value.text):
        return int(value.text)
    return None
