"""The page's files: the vendored libraries are the pinned npm packages' own bytes, the page loads
nothing from another site, and staticwebapp.config.json requires sign-in and forbids inline script."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import ROOT
from tests.support.page import CONFIG, WEB

VENDOR = WEB / "vendor"
NODE_MODULES = ROOT / "node_modules"


def vendored() -> list[tuple[str, str]]:
    """(source under node_modules, file in web/vendor) for each vendored file, from web/vendor/FILES."""
    lines = (VENDOR / "FILES").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split()) for line in lines if line.strip()]


@pytest.mark.parametrize(("source", "target"), vendored())
def test_a_vendored_file_is_the_installed_package_file_byte_for_byte(source, target):
    installed = NODE_MODULES / source
    if not installed.exists():
        raise AssertionError(f"{installed.relative_to(ROOT)} is missing: run scripts/setup (npm ci)")
    assert (VENDOR / target).read_bytes() == installed.read_bytes(), f"run scripts/vendor to copy {source} again"


def test_web_vendor_holds_only_the_listed_files():
    listed = {target for _, target in vendored()} | {"FILES"}
    assert {p.name for p in VENDOR.iterdir()} == listed


def test_the_vendored_packages_are_the_versions_package_json_pins():
    pinned = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]
    for package in {source.split("/")[0] for source, _ in vendored()}:
        installed = json.loads((NODE_MODULES / package / "package.json").read_text(encoding="utf-8"))
        assert re.fullmatch(r"\d+\.\d+\.\d+", pinned[package]), "pin an exact version"
        assert installed["version"] == pinned[package], package
    banner = (VENDOR / "marked.esm.js").read_text(encoding="utf-8")[:200]
    assert f"marked v{pinned['marked']}" in banner
    banner = (VENDOR / "purify.es.js").read_text(encoding="utf-8")[:200]
    assert f"DOMPurify {pinned['dompurify']}" in banner


def test_the_page_loads_nothing_from_another_site():
    own = [WEB / "index.html", WEB / "app.css", *sorted((WEB / "js").glob("*.js"))]
    for path in own:
        assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]", path.read_text(encoding="utf-8")), path.name
    for path in sorted((WEB / "js").glob("*.js")):
        for imported in re.findall(r'^import .* from "([^"]+)";$', path.read_text(encoding="utf-8"), re.MULTILINE):
            assert imported.startswith("./") or imported.startswith("../vendor/"), (path.name, imported)
            assert (path.parent / imported).resolve().is_file(), (path.name, imported)


def test_static_web_apps_requires_sign_in_for_everything():
    assert CONFIG["routes"][-1] == {"route": "/*", "allowedRoles": ["authenticated"]}
    assert all("anonymous" not in route.get("allowedRoles", []) for route in CONFIG["routes"])
    override = CONFIG["responseOverrides"]["401"]
    assert override["statusCode"] == 302 and override["redirect"].startswith("/.auth/login/")


def test_the_content_security_policy_forbids_inline_script_and_other_sites():
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in CONFIG["globalHeaders"]["Content-Security-Policy"].split(";")
        if directive.strip()
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"
    assert policy["trusted-types"] == "dompurify"
    assert all("unsafe" not in sources and "http" not in sources for sources in policy.values())
