"""The Bicep reader the infra tests use (tests/support/bicep), on the Bicep shapes it must not
misread: guards evaluated as ARM does, strings, objects, conditions and loops, and refusing what it
does not understand."""

from __future__ import annotations

import pytest

from tests.support import bicep

# The reader itself, on the Bicep shapes it must not misread


def test_reader_evaluates_guards_as_arm_does():
    names = {"on": True, "off": False, "empty_text": "", "text": "x"}.__getitem__
    assert bicep.evaluate("on && !empty(text) ? text : 'none'", names) == "x"
    assert bicep.evaluate("off || empty(empty_text)", names) is True
    assert bicep.evaluate("text == 'x' && text != 'y'", names) is True
    assert bicep.evaluate("off ? 'a' : on ? 'b' : 'c'", names) == "b"
    # Short-circuits: the branch not taken is never evaluated, so it may name what does not exist.
    assert bicep.evaluate("on ? 'kept' : unknown", names) == "kept"
    assert bicep.evaluate("off && unknown", names) is False
    with pytest.raises(KeyError):
        bicep.evaluate("on && unknown", names)
    with pytest.raises(bicep.BicepSyntaxError):
        bicep.evaluate("length(text)", names)


def test_reader_parses_strings_objects_conditions_and_loops():
    decls = bicep.parse(
        "// comment with 'quote'\n"
        "@description('It\\'s ${not} interpolated')\n"
        "param p string = 'a\\'b'\n"
        "var s = 'x${p}y${'z'}'\n"
        "var m = '''\nline ${x}\n'''\n"
        "resource r 'A.B/c@2024-01-01' existing = {\n  name: 'n'\n}\n"
        "module m1 'mod.bicep' = if (!empty(p)) {\n"
        "  name: 'm'\n  params: {\n    'quoted-key': true\n    list: [\n      1\n      'two'\n    ]\n"
        "    e: cond ? { a: 1 } : {}\n  }\n}\n"
        "resource many 'A.B/c@2024-01-01' = [for i in range(0, 2): {\n  name: 'x${i}'\n  resource child 'd' = {\n"
        "    name: 'c'\n  }\n}]\n"
    )
    by_name = {d.name: d for d in decls}
    assert by_name["p"].decorators["description"][0].literal is None
    assert bicep.literal(by_name["p"].value) == "a'b"
    assert by_name["s"].value.literal is None and by_name["s"].value.raw == "'x${p}y${'z'}'"
    assert by_name["m"].value.literal == "line ${x}\n"
    assert by_name["r"].existing and by_name["r"].resource_type == "A.B/c"
    m1 = by_name["m1"]
    assert m1.condition == "!empty(p)"
    assert bicep.literal(m1.body.get("params.quoted-key")) is True
    assert [bicep.literal(v) for v in m1.body.get("params.list").items] == [1, "two"]
    assert m1.body.get("params.e") == bicep.Expr("cond ? { a: 1 } : {}")
    many = by_name["many"]
    assert isinstance(many.value, bicep.Loop) and many.value.header == "i in range(0, 2)"
    assert [d.name for d in many.body.nested] == ["child"]


@pytest.mark.parametrize(
    "source",
    [
        "resource r 'A/b@1' = {\n  name: 'x'\n",  # unclosed object
        "var v = 'unterminated\n",
        "param p string = {\n  a: 1\n  a: 2\n}\n",  # duplicate property
        "frobnicate x = 1\n",
        # What infra/ does not use is refused, not guessed at:
        "type pair = { a: string }\n",
        "param p string[]\n",
        "var v = a.?b\n",
        "var v = a\n  ? b\n  : c\n",  # an expression going on over a line break
        "var v = 'a\\qb'\n",  # an unknown escape
    ],
)
def test_reader_refuses_what_it_does_not_understand(source):
    with pytest.raises(bicep.BicepSyntaxError):
        bicep.parse(source)
