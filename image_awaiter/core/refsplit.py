"""The common forms of an image reference, split without a regular expression.

docker-image-py parses with the third-party `regex` module (the grammar uses `[[:xdigit:]]`),
whose import and pattern compiling, in pure Python, were about a tenth of a `check`'s start-up
although almost every reference is one of a few plain forms. `split_common` handles those forms
with string operations and gives exactly what `Reference.parse_normalized_named` gives (name,
tag, digest); for anything else, or anything it is unsure of (IPv6 hosts, an uppercase first
component, unknown digest algorithms, over-long names, every invalid reference), it returns None
and references.py asks docker-image-py, whose answer, and error, stand. The grammar
(github.com/distribution/reference, regexp.go):

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component *( "/" path-component )
    domain     := domain-component *( "." domain-component ) [ ":" port-number ]
    domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
    path-component   := [a-z0-9]+ *( separator [a-z0-9]+ ),  separator := [._] | "__" | "-"+
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := sha256:<64 hex> | sha384:<96 hex> | sha512:<128 hex>  (lowercase hex)

and Docker's normalisation (splitDockerDomain): a first component is a domain when it contains
`.` or `:` or is `localhost`; otherwise the name is on `docker.io`, under `library/` when it has
one component; `index.docker.io` is `docker.io`. tests/unit/test_refsplit.py checks this against
docker-image-py on the reference tables and on seeded random references.
"""

from __future__ import annotations

import string

_LOWER_ALNUM = frozenset(string.ascii_lowercase + string.digits)
_DOMAIN_CHARS = frozenset(string.ascii_letters + string.digits + "-")
_DIGITS = frozenset(string.digits)
_TAG_FIRST = frozenset(string.ascii_letters + string.digits + "_")
_TAG_CHARS = _TAG_FIRST | {".", "-"}
_LOWER_HEX = frozenset("0123456789abcdef")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_PATH_MAX = 255  # docker-image-py's NAME_TOTAL_LENGTH_MAX, on the path after the domain
DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"


def split_common(text: str) -> tuple[str, str | None, str | None] | None:
    """(name, tag, digest) of TEXT normalised as docker-image-py normalises it, or None when
    TEXT is not one of the common forms (the caller then asks docker-image-py)."""
    if len(text) == 64 and _LOWER_HEX.issuperset(text):
        return None  # a bare image id: the library rejects it
    rest, at, digest_text = text.partition("@")
    digest: str | None = None
    if at:
        algorithm, _, encoded = digest_text.partition(":")
        if _DIGEST_HEX_LENGTH.get(algorithm) != len(encoded) or not _LOWER_HEX.issuperset(encoded):
            return None
        digest = digest_text
    tag: str | None = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _is_tag(tag):
            return None
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        if not _is_domain(first):
            return None
        domain = DEFAULT_DOMAIN if first == LEGACY_DEFAULT_DOMAIN else first
    elif slash and first.lower() != first:
        return None  # an uppercase first component is a domain: rare, the library decides
    else:
        domain, remainder = DEFAULT_DOMAIN, rest
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = "library/" + remainder
    if len(remainder) > _PATH_MAX or not all(map(_is_path_component, remainder.split("/"))):
        return None
    return f"{domain}/{remainder}", tag, digest


def _is_tag(tag: str) -> bool:
    return 0 < len(tag) <= 128 and tag[0] in _TAG_FIRST and _TAG_CHARS.issuperset(tag)


def _is_domain(domain: str) -> bool:
    host, colon, port = domain.partition(":")
    if colon and not (port and _DIGITS.issuperset(port)):
        return False
    return all(
        part and part[0] != "-" and part[-1] != "-" and _DOMAIN_CHARS.issuperset(part)
        for part in host.split(".")
    )


def _is_path_component(component: str) -> bool:
    """[a-z0-9]+ runs joined by one separator each: `.`, `_`, `__` or any run of `-`."""
    if not component or component[0] not in _LOWER_ALNUM or component[-1] not in _LOWER_ALNUM:
        return False
    if _LOWER_ALNUM.issuperset(component):
        return True
    separator = ""
    for char in component:
        if char in _LOWER_ALNUM:
            if separator and not (
                separator in (".", "_", "__") or separator == "-" * len(separator)
            ):
                return False
            separator = ""
        else:
            separator += char
    return True
