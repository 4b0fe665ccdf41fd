"""Secrets out of everything shown: `redact` masks the passwords a text holds, in every URL
form a user may pass (`postgresql://user:pw@host/db`, `http://user:pw@host:5000`,
`sqlite:///path?password=pw`, `https://host/?token=pw`) and as `key=value` settings
(`password=pw` in a libpq string). Every printed line, error, log, tag and report that
shows a store's URL shows it through this one function."""

from __future__ import annotations

import re

MASK = "***"
_SECRET_KEY = (
    r"[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|credential"
    r"|signature)[\w.-]*|sig"
)
# `key=value` where the key names a secret: a URL's query or a libpq/ini-style setting
_KEY_VALUE = re.compile(rf"(?i)(?<![\w.-])({_SECRET_KEY})=([^\s&;#'\"<>`]*)")
# scheme://rest-of-the-URL, up to whitespace or a quote
_URL = re.compile(r"(?i)(?<![\w+.-])([a-z][a-z0-9+.-]*)://([^\s'\"<>`]*)")


def _userinfo(match: re.Match) -> str:
    """The URL with the password of its user part masked. A password may hold unencoded
    `/`, `:` or `@` (SQLAlchemy accepts them): the user part runs to the last `@` before
    the query, and everything after the first `:` in it is masked. Over http(s), a user
    part without a password may itself be a token: masked whole."""
    scheme, rest = match.group(1), match.group(2)
    if rest.startswith("/"):  # no authority: sqlite:///path, file:///path
        return match.group(0)
    before_query = re.split(r"[?#]", rest, maxsplit=1)[0]
    at = before_query.rfind("@")
    if at < 0:
        return match.group(0)
    user, colon, _ = before_query[:at].partition(":")
    if colon:
        shown = f"{user}:{MASK}"
    elif scheme.lower() in ("http", "https") and user != MASK:
        shown = MASK
    else:
        shown = user
    return f"{scheme}://{shown}{rest[at:]}"


def redact(text: str) -> str:
    """`text` with every password or token it holds in a URL or a `key=value` masked
    (`***`); the rest, user names and hosts included, unchanged. Idempotent."""
    text = _URL.sub(_userinfo, text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}={MASK}", text)
