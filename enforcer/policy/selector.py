"""Which policies select a container.

Image references: an operator writing `images: ["nginx"]` means "the nginx image", however
`docker run` spelled it. Because the policies mostly deny, a selector that misses a spelling
fails open, so we match a glob against every equivalent spelling of the reference:
- as given ("nginx", "nginx:1.25", "docker.io/library/nginx:1.25", "nginx@sha256:..."),
- the short Docker Hub form ("nginx:1.25") and the fully qualified form
  ("docker.io/library/nginx:1.25"), "index.docker.io" counting as "docker.io",
- with the implicit ":latest" when no tag or digest was given.
A glob without a tag or digest (nothing after ':' or '@' in its last path component), such
as "nginx" or "registry:5000/team/*", also matches the repository alone, i.e. any tag:
"nginx" matches "nginx:1.25". To pin a tag, write it: "nginx:1.25", "nginx:1.*".
Globs are case-sensitive; '*' also matches '/' and ':'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from enforcer.policy.glob import glob_match
from enforcer.policy.loader import PolicySet
from enforcer.policy.model import Policy, Selector

_HUB = "docker.io"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")


def _split(ref: str) -> tuple[str, str, str]:
    """ref -> (repository, ":tag" or "", "@digest" or "")."""
    repo, at, digest = ref.partition("@")
    digest = at + digest
    slash = repo.rfind("/")
    colon = repo.rfind(":")
    tag = ""
    if colon > slash:  # a ':' in the last component is a tag; earlier it is a registry port
        repo, tag = repo[:colon], repo[colon:]
    return repo, tag, digest


def _repo_forms(repo: str) -> set[str]:
    """Short and fully qualified spellings of a repository name."""
    forms = {repo}
    first, sep, rest = repo.partition("/")
    has_domain = bool(sep) and ("." in first or ":" in first or first == "localhost")
    if has_domain and first not in _HUB_ALIASES:
        return forms  # a private registry: only one spelling
    path = rest if has_domain else repo
    if "/" not in path:
        path = "library/" + path
    forms.add(f"{_HUB}/{path}")
    forms.add(path)  # "library/nginx" is also accepted by docker
    if path.startswith("library/") and path.count("/") == 1:
        forms.add(path.removeprefix("library/"))
    return forms


def image_candidates(ref: str) -> tuple[set[str], set[str]]:
    """(full references, repositories alone) that `ref` is equivalent to."""
    repo, tag, digest = _split(ref)
    repos = _repo_forms(repo)
    suffixes = {tag + digest} if (tag or digest) else {"", ":latest"}
    full = {ref} | {r + s for r in repos for s in suffixes}
    return full, repos


def _pattern_has_tag(pattern: str) -> bool:
    last = pattern.rsplit("/", 1)[-1]
    return ":" in last or "@" in pattern


def image_matches(pattern: str, ref: str) -> bool:
    full, repos = image_candidates(ref)
    if any(glob_match(pattern, c) for c in full):
        return True
    return not _pattern_has_tag(pattern) and any(glob_match(pattern, r) for r in repos)


def matches(selector: Selector, name: str, image: str, labels: Mapping[str, str]) -> bool:
    """All given keys must match; within a list any glob may match; {} matches everything.

    `name` may carry Docker's leading '/' (the API's spelling); it is ignored.
    """
    if selector.containerNames is not None:
        bare = name.lstrip("/")
        if not any(glob_match(g, bare) for g in selector.containerNames):
            return False
    if selector.images is not None and not any(image_matches(g, image) for g in selector.images):
        return False
    if selector.labels is not None:
        for key, value in selector.labels.items():
            if labels.get(key) != value:
                return False
    return True


def policies_for(
    policy_set: PolicySet | Iterable[Policy], name: str, image: str, labels: Mapping[str, str]
) -> tuple[Policy, ...]:
    """Policies selecting the container, sorted by policy name (stable across reloads and
    file renames). `policy_set` is a PolicySet or any iterable of Policy."""
    policies = policy_set.policies if isinstance(policy_set, PolicySet) else policy_set
    chosen = [p for p in policies if matches(p.spec.selector, name, image, labels)]
    return tuple(sorted(chosen, key=lambda p: p.name))


def every_container_policies(policy_set: PolicySet | Iterable[Policy]) -> tuple[Policy, ...]:
    """Policies whose selector has no key: they select every container whatever its name,
    image and labels, so they apply before the daemon knows which container it is."""
    policies = policy_set.policies if isinstance(policy_set, PolicySet) else policy_set
    chosen = [
        p
        for p in policies
        if p.spec.selector.containerNames is None and p.spec.selector.images is None and p.spec.selector.labels is None
    ]
    return tuple(sorted(chosen, key=lambda p: p.name))
