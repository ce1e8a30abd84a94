"""Who owns a request: the client principal, honoured only when the deployment trusts it."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.datastructures import Headers

from chat.web.callers import APP_OWNER, MAX_PRINCIPAL_HEADER_CHARS, owner_of
from chat.web.errors import Unauthenticated, status_of
from tests.support.wire import OBJECT_ID

NAME_ID = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"


def encode(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def swa(user_id: str = "d5c0ffee0123456789abcdef01234567", provider: str = "github", **extra) -> str:
    """A Static Web Apps principal."""
    document = {"identityProvider": provider, "userId": user_id, "userDetails": "octocat", "userRoles": ["anonymous"]}
    return encode({**document, **extra})


def app_service(*claims: tuple[str, str], auth_typ: str = "aad") -> str:
    """An App Service authentication principal."""
    return encode(
        {
            "auth_typ": auth_typ,
            "claims": [{"typ": typ, "val": val} for typ, val in claims],
            "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
            "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        }
    )


def trusted(value: str | None) -> str:
    """The owner of a request with this header, as the platform spells its name."""
    headers = Headers(headers={} if value is None else {"X-MS-CLIENT-PRINCIPAL": value})
    return owner_of(headers, trust_client_principal=True)


def refusal(value: str | None) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        trusted(value)
    assert status_of(caught.value) == 401
    assert caught.value.message
    return caught.value


# -- without trust ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", swa(), app_service((OBJECT_ID, "oid-1")), "not base64 at all!"])
def test_without_trust_every_caller_is_the_app(value):
    headers = Headers(headers={} if value is None else {"x-ms-client-principal": value})
    assert owner_of(headers, trust_client_principal=False) == APP_OWNER == "app"


# -- with trust: who the user is ----------------------------------------------------------------


def test_a_static_web_apps_principal_names_the_provider_and_user():
    assert trusted(swa("abc123", "github")) == "user:github:abc123"


def test_an_app_service_principal_names_its_object_id():
    owner = trusted(app_service(("name", "Ada"), (OBJECT_ID, "0b1d-oid"), (NAME_ID, "other")))
    assert owner == "user:aad:0b1d-oid"


@pytest.mark.parametrize(
    ("claims", "user"),
    [
        ([("oid", "short-oid"), ("sub", "subject")], "short-oid"),
        ([(NAME_ID, "name-id"), ("sub", "subject")], "name-id"),
        ([("sub", "subject")], "subject"),
        ([(OBJECT_ID, ""), ("oid", "fallback")], "fallback"),
    ],
)
def test_an_app_service_principal_falls_back_through_the_object_id_claims(claims, user):
    assert trusted(app_service(*claims)) == f"user:aad:{user}"


def test_unpadded_base64_is_accepted():
    value = swa("pad")
    assert trusted(value.rstrip("=")) == trusted(value)


def test_names_and_roles_do_not_change_the_owner():
    first = trusted(swa("same-user", userDetails="old@example.com", userRoles=["anonymous"]))
    second = trusted(swa("same-user", userDetails="new@example.com", userRoles=["authenticated", "admin"]))
    assert first == second


def test_users_and_providers_are_distinct_owners():
    owners = [
        trusted(swa("user-1", "github")),
        trusted(swa("user-2", "github")),
        trusted(swa("user-1", "aad")),
        trusted(app_service((OBJECT_ID, "user-2"))),
        trusted(app_service((OBJECT_ID, "user-2"), auth_typ="google")),
    ]
    assert len(set(owners)) == len(owners)
    assert APP_OWNER not in owners


def test_a_principal_of_exactly_the_maximum_size_is_accepted():
    base = len(json.dumps({"identityProvider": "github", "userId": "u", "pad": ""}).encode())
    # 12,288 bytes of JSON are exactly 16,384 base64 characters.
    value = encode({"identityProvider": "github", "userId": "u", "pad": "x" * (12_288 - base)})
    assert len(value) == MAX_PRINCIPAL_HEADER_CHARS
    assert trusted(value) == "user:github:u"


# -- with trust: refusals -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""], ids=["missing", "empty"])
def test_no_principal_is_unauthenticated(value):
    assert refusal(value).code == "unauthenticated"


MALFORMED = {
    "not base64": "not base64 at all!",
    "url-safe alphabet": base64.urlsafe_b64encode(b'{"userId": "\xfb\xff"}').decode(),
    "non-ascii": "eyJ1c2VySWQiOiAi8J+YgCJ9é",
    "one char too many": "abcde",
    "not json": base64.b64encode(b"hello world").decode(),
    "not utf-8": base64.b64encode(b'{"identityProvider": "github", "userId": "\xff"}').decode(),
    "json array": encode([{"identityProvider": "github", "userId": "u"}]),
    "json string": encode("user"),
    "json number": encode(42),
    "json null": encode(None),
    "empty object": encode({}),
    "no userId": encode({"identityProvider": "github", "userDetails": "octocat"}),
    "no identityProvider": encode({"userId": "u"}),
    "empty userId": swa(""),
    "empty identityProvider": swa("u", ""),
    "userId a number": encode({"identityProvider": "github", "userId": 7}),
    "userId an object": encode({"identityProvider": "github", "userId": {"id": "u"}}),
    "userId too many digits": base64.b64encode(
        b'{"identityProvider": "github", "userId": ' + b"9" * 5000 + b"}"
    ).decode(),
    "deeply nested": base64.b64encode(b"[" * 6000 + b"]" * 6000).decode(),
    "claims not a list": encode({"auth_typ": "aad", "claims": {"typ": OBJECT_ID, "val": "u"}}),
    "claims without an object id": app_service(("name", "Ada"), ("email", "ada@example.com")),
    "claim value not a string": encode({"auth_typ": "aad", "claims": [{"typ": OBJECT_ID, "val": 7}]}),
    "claim type a list": encode({"auth_typ": "aad", "claims": [{"typ": [OBJECT_ID], "val": "u"}]}),
    "claim type an object": encode({"auth_typ": "aad", "claims": [{"typ": {}, "val": "u"}, "junk", None]}),
    "no auth_typ": encode({"claims": [{"typ": OBJECT_ID, "val": "u"}]}),
    "one character too large": swa("u", pad="x" * 12_300)[: MAX_PRINCIPAL_HEADER_CHARS + 1],
    "huge": swa("u", pad="x" * 1_000_000),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_principal_is_refused_not_a_crash(case):
    assert refusal(MALFORMED[case]).code == "invalid_client_principal"


def test_the_refusal_does_not_echo_the_header():
    error = refusal(encode({"identityProvider": "github", "userDetails": "secret-name"}))
    assert "secret-name" not in error.message


def test_a_provider_name_with_a_colon_cannot_pose_as_another_user():
    # "a:b" + "c" would otherwise be the same owner as "a" + "b:c".
    with pytest.raises(Unauthenticated) as refused:
        trusted(swa("c", "a:b"))
    assert refused.value.code == "invalid_client_principal"
    assert trusted(swa("b:c", "a")) == "user:a:b:c"
