"""Selector matching, including the image-reference spellings decision."""

from __future__ import annotations

from typing import Any

import pytest

from enforcer.policy.glob import glob_match, validate_glob
from enforcer.policy.model import Policy, Selector
from enforcer.policy.selector import image_matches, matches, policies_for


def sel(**kw: Any) -> Selector:
    return Selector.model_validate(kw)


@pytest.mark.parametrize(
    ("pattern", "text", "ok"),
    [
        ("web-*", "web-1", True),
        ("web-*", "web", False),
        ("web-?", "web-12", False),
        ("db-[0-9]", "db-7", True),
        ("db-[!0-9]", "db-7", False),
        ("db-[^0-9]", "db-x", True),
        ("a[]]b", "a]b", True),
        ("WEB", "web", False),
        ("*", "", True),
        ("a.b", "axb", False),
        ("x*", "x/y:z", True),
    ],
)
def test_glob(pattern: str, text: str, ok: bool) -> None:
    assert glob_match(pattern, text) is ok


@pytest.mark.parametrize("bad", ["", "a[", "a[]", "a[!]", "[z-a]", "a\x00"])
def test_bad_globs(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_glob(bad)


@pytest.mark.parametrize(
    ("pattern", "ref", "ok"),
    [
        ("nginx:*", "nginx:1.25", True),
        ("nginx:*", "nginx", True),  # implicit :latest
        ("nginx:*", "docker.io/library/nginx:1.25", True),
        ("nginx:*", "index.docker.io/library/nginx:1.25", True),
        ("nginx", "nginx", True),
        ("nginx", "nginx:latest", True),
        ("nginx", "docker.io/library/nginx", True),
        ("nginx", "nginx:1.25", True),  # a tagless glob means "any tag"
        ("nginx", "nginx@sha256:abc", True),
        ("nginx:latest", "nginx", True),
        ("nginx:latest", "nginx:1.25", False),
        ("nginx:1.25", "nginx:1.26", False),
        ("nginx:1.*", "nginx:1.26", True),
        ("docker.io/library/nginx:*", "nginx:1.25", True),
        ("library/nginx", "nginx", True),
        ("nginx", "nginxinc/nginx", False),
        ("nginx", "evil/nginx", False),
        ("nginx", "quay.io/nginx", False),
        ("nginx", "nginx-unprivileged", False),
        ("bitnami/*", "bitnami/redis:7", True),
        ("bitnami/*", "docker.io/bitnami/redis:7", True),
        ("registry:5000/team/*", "registry:5000/team/app:1", True),
        ("registry:5000/team/app", "registry:5000/team/app:1", True),
        ("registry:5000/team/app:2", "registry:5000/team/app:1", False),
        ("localhost/app", "localhost/app:dev", True),
        ("*", "sha256:0123abcd", True),
        ("*@sha256:*", "nginx@sha256:abc", True),
        ("*@sha256:*", "nginx:1", False),
    ],
)
def test_image_matches(pattern: str, ref: str, ok: bool) -> None:
    assert image_matches(pattern, ref) is ok


def test_empty_selector_matches_everything() -> None:
    assert matches(sel(), "anything", "busybox", {})


def test_all_keys_must_match_each_list_is_or() -> None:
    s = sel(containerNames=["web-*", "api"], images=["nginx:*"], labels={"app": "web", "tier": "1"})
    labels = {"app": "web", "tier": "1", "extra": "x"}
    assert matches(s, "web-1", "nginx:1.25", labels)
    assert matches(s, "/api", "nginx:1.25", labels)  # Docker's leading '/' is ignored
    assert not matches(s, "db", "nginx:1.25", labels)
    assert not matches(s, "web-1", "httpd:2", labels)
    assert not matches(s, "web-1", "nginx:1.25", {"app": "web"})  # every label must be there
    assert not matches(s, "web-1", "nginx:1.25", {"app": "Web", "tier": "1"})


def test_label_value_empty_string_is_a_value() -> None:
    s = sel(labels={"k": ""})
    assert matches(s, "c", "i", {"k": ""})
    assert not matches(s, "c", "i", {})


def _p(name: str, selector: dict[str, Any]) -> Policy:
    return Policy.model_validate(
        {
            "apiVersion": "enforcer/v1",
            "kind": "ContainerPolicy",
            "metadata": {"name": name},
            "spec": {"selector": selector},
        }
    )


def test_policies_for_is_sorted_by_name() -> None:
    ps = [_p("zeta", {}), _p("alpha", {"images": ["nginx"]}), _p("mid", {"labels": {"a": "b"}})]
    assert [p.name for p in policies_for(ps, "/web", "nginx:1", {})] == ["alpha", "zeta"]
    assert [p.name for p in policies_for(ps, "x", "redis", {"a": "b"})] == ["mid", "zeta"]
