"""Masking the password of a broker or Redis URL before it is printed or logged."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from runeworker.engine.workflow import URL_PASSWORD

_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pass)=)[^&#]*")


def mask_url(url: str) -> str:
    """`url` with its password (also a `password=` query parameter) replaced by `***`; the rest
    is kept byte for byte (re-serialising would rewrite `unix:///path`). Non-URLs pass as is.

    A password with an unencoded `/`, `?` or `#` seems to end the authority early (no client can
    parse such a URL, but its password is still a secret): when the authority has no `@`, the
    last `@` of the URL ends the user info. A URL without credentials but with an `@` after a
    `host:port` is masked too much rather than too little. A URL missing its scheme
    (`guest:pw@host`, a config value that is wrong anyway) is masked as if it had one."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        userinfo, at, host = url.rpartition("@")
        if at and ":" in userinfo:
            return f"{userinfo.partition(':')[0]}:***@{host}"
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    if "@" not in rest[:end]:
        end = len(rest)
    userinfo, at, host = rest[:end].rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:***@{host}{rest[end:]}"
    return _QUERY_SECRET.sub(r"\1***", f"{scheme}://{rest}")


def scrub_password(text: str, url: str) -> str:
    """`text` (an error a library raised about `url`) without the URL's password, raw or
    percent-decoded, should the library ever echo it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        for secret in (password, unquote(password)):
            text = text.replace(secret, "***")
    return text


def mask_url_passwords(text: str) -> str:
    """`text` (an error message, a log line) with the password of every URL in it replaced by
    `***`: `GET http://ann:***@host/x: ...`."""
    return URL_PASSWORD.sub(r"\1***@", text) if "://" in text else text
