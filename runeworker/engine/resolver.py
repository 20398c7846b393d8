"""Template resolution of node parameters against the accumulated context.

Grammar. A reference is `$` + a root name (`[A-Za-z0-9_-]+`) + an optional path of `.field`
(any characters but `.`, `[` and `]`; `$` and `-` allowed, e.g. `$Filter.$json`) and `[n]` segments
(`$json[1].name`). The root `R` names the context key `"$R"`; when that key is absent, `aliases`
(node id -> node name) lets `$<node id>` find `"$<node name>"`. `$credential.x` reads the node's
credentials when the node has any. Templates `{{ X }}` are accepted too (whitespace optional).

Rules, applied to every string value (dicts and lists are walked, keys untouched):

* A string that is exactly one reference, bare (`$http.status`) or templated (`{{ $http.status }}`),
  becomes the referenced value with its JSON type. If it fails, the parameter fails.
* Inside text, each reference is replaced by `render(value)`. A trailing `.` ends the reference
  (`"Hi $u.name."` -> `"Hi Bob."`), `$$` is a literal `$`, and a `$` not followed by a name
  character stays as it is.
* A failed reference inside text: a template reference always fails the parameter; a bare
  reference fails it when its root is known (a context key, a node id or name from `aliases`, or
  `credential` when the node has credentials) and is left literal when the root is unknown, so
  prices like `"costs $5"` and shell-like text pass through.
* A template whose content is not a plain reference (`{{ $json.a * 2 }}`) is left unchanged: the
  nodes that evaluate expressions do that themselves.
* Values taken from the context or the credentials are never resolved again (no injection).

Resolved values are shared with the context, not copied: nodes must not mutate their parameters.
A parameter nested deeper than `runeworker.engine.depth.MAX_DEPTH` fails (its status shows
`depth.PLACEHOLDER` instead), and so does a reference to a context value that deep.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

import msgspec

from runeworker.engine import depth
from runeworker.engine.context import LazyContext, descend
from runeworker.engine.rtes_numbers import may_refuse
from runeworker.errors import ResolveError, UnreadableError

_NAME = r"[A-Za-z0-9_-]+"
# Go's greedy path class, except that the path may not end with "." (sentence-final period).
_PATH = r"(?:[.\[][A-Za-z0-9_\[\].$-]*(?<!\.))?"
_REF = re.compile(rf"\$({_NAME})({_PATH})")
_WHOLE_TEMPLATE = re.compile(rf"\{{\{{\s*(\$({_NAME}){_PATH})\s*\}}\}}")
# A template's body holds no "{{": the scan from an opening that is never closed stops at the
# next opening instead of running to the end of the text, which made a parameter of many
# unclosed "{{" quadratic (120 KB of them took 14 s; now linear). In "{{ a {{ $x }}" the
# template is "{{ $x }}", and "{{ a " is text.
_SCAN = re.compile(rf"\{{\{{((?:(?!\{{\{{).)*?)\}}\}}|\$\$|\$({_NAME})({_PATH})", re.DOTALL)
_ROOT = re.compile(rf"\$({_NAME})")
_FIELD_END = re.compile(r"[.\[]")
_DIGITS = re.compile(r"[0-9]+")

_CREDENTIAL = "credential"
MASK = "***"
# Secrets shorter than this are masked only where they are a whole value: masking "p" or "abc"
# inside every string would destroy unrelated text.
_MIN_SUBSTRING_SECRET = 4

Segment = str | int
# Levels a status or completion adds around a value (final_context -> "$Node" -> output).
_WRAPPING = 4


def render(value: Any) -> str:
    """Text form of a value interpolated into a string (JSON-like, never Go's `%v`)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _render_float(value)
    if isinstance(value, dict | list | tuple):
        return msgspec.json.encode(value).decode()
    return str(value)


def _render_float(x: float) -> str:
    """Shortest round-trip digits, without an exponent below 1e21 (like JavaScript)."""
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    if abs(x) >= 1e21:
        return repr(x)
    if x.is_integer():
        return str(int(x))
    text = repr(x)
    return format(Decimal(text), "f") if "e" in text else text


def _parse_reference(ref: str) -> tuple[str, tuple[Segment, ...]]:
    """Split `$root.a[0].b` into ("root", ("a", 0, "b")); grammar errors raise ResolveError."""
    m = _ROOT.match(ref)
    if m is None:
        raise ResolveError(f"reference {ref}: a reference starts with $ and a name")
    segments: list[Segment] = []
    pos, end = m.end(), len(ref)
    while pos < end:
        char = ref[pos]
        if char == ".":
            stop = _FIELD_END.search(ref, pos + 1)
            nxt = stop.start() if stop else end
            if nxt == pos + 1:
                what = "trailing dot" if nxt == end else f"empty field name at position {pos}"
                raise ResolveError(f"reference {ref}: {what}")
            field = ref[pos + 1 : nxt]
            if "]" in field:  # a bracket closed without being opened, as Go refuses it
                at = pos + 1 + field.index("]")
                raise ResolveError(f"reference {ref}: unexpected ']' at position {at}")
            segments.append(field)
            pos = nxt
        elif char == "[":
            close = ref.find("]", pos)
            if close < 0:
                raise ResolveError(f"reference {ref}: missing ']' after '['")
            text = ref[pos + 1 : close]
            if not _DIGITS.fullmatch(text):
                raise ResolveError(f"reference {ref}: bad index [{text}], expected [n] with n >= 0")
            if len(text) > 18:  # beyond any array's length (and int() refuses 4300 digits)
                shown = ref if len(ref) <= 80 else ref[:60] + "..."
                raise ResolveError(
                    f"reference {shown}: index of {len(text)} digits is out of range"
                )
            segments.append(int(text))
            pos = close + 1
        else:
            raise ResolveError(f"reference {ref}: unexpected {char!r} at position {pos}")
    return m.group(1), tuple(segments)


# Cached by a call rather than a decorator: mutmut skips decorated functions (docs/MUTATION.md).
# At most 4096 references of at most KEPT_REFERENCE_CHARS each (about 2 MB together): a longer
# one is parsed each time. A cache bounded by count alone kept references of any length, which
# a workflow writes at will (4096 of 16 KB: 64 MB, and the heap they pinned).
KEPT_REFERENCE_CHARS = 256
_parse = lru_cache(maxsize=4096)(_parse_reference)


def json_kind(value: Any) -> str:
    """JSON type name of a value, for error sentences (never the value: it may be a secret)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def a_json_kind(value: Any) -> str:
    """`json_kind` with its article: "a number", "an array", "null"."""
    name = json_kind(value)
    if name == "null":
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name


def _where(root: str, segments: tuple[Segment, ...]) -> str:
    return "$" + root + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in segments)


def _walk(ref: str, root: str, value: Any, segments: tuple[Segment, ...]) -> Any:
    """Follow the path segments from the root value."""
    for i, seg in enumerate(segments):
        if isinstance(seg, int):
            if not isinstance(value, list):
                reason = f"cannot index {a_json_kind(value)} with [{seg}]"
            elif seg >= len(value):
                reason = f"index {seg} out of range (array of {len(value)})"
            else:
                value = value[seg]
                continue
        elif not isinstance(value, dict):
            reason = f"cannot read field '{seg}' of {a_json_kind(value)}"
        elif seg not in value:
            reason = f"field '{seg}' not found"
        else:
            value = value[seg]
            continue
        raise ResolveError(f"reference {ref}: {reason} at {_where(root, segments[:i])}")
    return value


# Credential fields that address or describe a service rather than unlock it: masking them
# would only hide useful context (a refused connection to `***:587`) without protecting anything.
PUBLIC_CREDENTIAL_KEYS = frozenset(
    {
        "host",
        "port",
        "base_url",
        "security",
        "type",
        "username",
        "user",
        "field",
        "header_name",
        "token_type",
        "ignore_ssl",
        "verify",
        "from",
        "email",
    }
)


def _secret_strings(value: Any, out: set[str]) -> None:
    # an explicit stack: credential values come from the definition, nested at will
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item:
                out.add(item)
            # a token pasted with its newline: the http node sends it trimmed, and a server that
            # echoes the request hands the trimmed text back
            if (trimmed := item.strip()) and trimmed != item:
                out.add(trimmed)
        elif isinstance(item, dict):
            stack += [
                v for k, v in item.items() if k.rsplit(".", 1)[-1] not in PUBLIC_CREDENTIAL_KEYS
            ]
        elif isinstance(item, list):
            stack += item


def _encoded(credentials: Any) -> set[str]:
    """Forms in which a node sends a secret without quoting it: HTTP Basic auth's base64 of
    `username:password` (a server that echoes the request would hand it back in its output)."""
    if not isinstance(credentials, Mapping):
        return set()
    user, password = credentials.get("username") or "", credentials.get("password")
    if not isinstance(password, str) or not password or not isinstance(user, str):
        return set()
    return {base64.b64encode(f"{user.strip()}:{password.strip()}".encode()).decode()}


# What requests leaves unquoted when it prepares a URL (`requests.utils.requote_uri`).
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~"


def _written_forms(secret: str) -> set[str]:
    """The other ways text may carry `secret`: escaped inside a JSON string (a template that
    renders an object holding it, `JSON.stringify`, an SDK's error; also ASCII-only), in
    Python's repr (an error quoting a parameter with `!r`), percent-encoded as requests writes
    it in a prepared URL (an http error names the URL; an echo server returns its path), as
    one URL component and in a form body; a non-ASCII one also as its UTF-8 bytes read as
    ISO-8859-1, as a server that echoes a request header reads it (RFC 9110's obs-text;
    Python's http.server, Node's http)."""
    forms = {
        msgspec.json.encode(secret).decode()[1:-1],
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=_URI_SAFE),
        quote(secret, safe=""),
        quote_plus(secret),
    }
    if not secret.isascii():
        forms.add(secret.encode("utf-8", "surrogatepass").decode("latin-1"))
    forms.discard(secret)
    return forms


_NO_SECRETS: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)


class Resolver:
    """Resolves `$references` and `{{ }}` templates for one node execution.

    `used_keys` collects the root context key of every reference touched, failed ones included.
    `secrets`: more credential value blocks to mask, which `$credential` does not reach (those
    the API embeds in parameters, `runeworker.engine.workflow.embedded_credentials`).
    """

    def __init__(
        self,
        context: Mapping[str, Any],
        *,
        credentials: Mapping[str, Any] | None = None,
        aliases: Mapping[str, str] | None = None,
        secrets: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self._context = context
        self._credentials = credentials
        self._more_secrets = secrets
        self._aliases: Mapping[str, str] = aliases or {}
        self._masker: tuple[frozenset[str], re.Pattern[str] | None] | None = None
        if not (credentials or secrets):  # most nodes: nothing to mask, known at once
            self._masker = _NO_SECRETS
        self.used_keys: set[str] = set()
        # what `used_inputs` publishes in place of a value's bytes (None: the bytes), by key, with
        # the bytes and whether the value was read whole when it was decided
        self._stand_ins: dict[str, tuple[Any, bool, Any]] = {}

    # -- public API --------------------------------------------------------------------------

    def resolve_params(
        self, params: Mapping[str, Any], skip: frozenset[str] = frozenset()
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Resolve every parameter except those in `skip`; return (resolved, errors).

        A failing parameter keeps its raw value and gets an error sentence in `errors`; the other
        parameters are still resolved.
        """
        resolved: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, raw in params.items():
            if name in skip:
                # the node walks it itself: its depth is checked here, once
                too_deep = isinstance(raw, dict | list) and depth.exceeds(raw)
                resolved[name] = depth.PLACEHOLDER if too_deep else raw
                if too_deep:
                    errors[name] = f"the value is {depth.TOO_DEEP}"
                continue
            try:
                resolved[name] = self.resolve_value(raw)
            except ResolveError as exc:
                # the status shows the parameter as written, unless it is itself too deep
                resolved[name] = depth.PLACEHOLDER if depth.exceeds(raw) else raw
                errors[name] = str(exc)
        return resolved, errors

    def resolve_value(self, value: Any) -> Any:
        """Resolve one value, walking dicts and lists; raises ResolveError on a failed reference
        and on a value nested deeper than `depth.MAX_DEPTH`."""
        return self._resolve(value, 1)

    def _resolve(self, value: Any, level: int) -> Any:
        if isinstance(value, str):
            return self._resolve_str(value) if "$" in value else value
        if isinstance(value, dict | list) and level > depth.MAX_DEPTH:
            raise ResolveError(f"the value is {depth.TOO_DEEP}")
        if isinstance(value, dict):
            return {k: self._resolve(v, level + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, level + 1) for v in value]
        return value

    def lookup(self, ref: str) -> Any:
        """Value of a reference such as `$Name.path[0].x` (JSON type kept); raises ResolveError."""
        return self._lookup(ref, literal_fallback=False)

    def lookup_direct(self, ref: str) -> Any:
        """Like `lookup`, but when the root is missing (or `ref` is not a valid reference) the whole
        `ref` is tried as a literal context key."""
        return self._lookup(ref, literal_fallback=True)

    def mask(self, value: Any) -> Any:
        """`value` with every credential string replaced by "***": a copy when the node has
        secrets, `value` itself when it has none (statuses mask every parameter, output and
        used input, so the no-secret case must not copy whole contexts)."""
        exact, pattern = self._secrets()
        if not exact and pattern is None:
            return value
        return self._mask(value, exact, pattern)

    def has_secrets(self) -> bool:
        """True when `mask` has anything to replace."""
        exact, pattern = self._secrets()
        return bool(exact) or pattern is not None

    def _secrets(self) -> tuple[frozenset[str], re.Pattern[str] | None]:
        """(exact secret strings, pattern of the long ones), computed on first use."""
        if self._masker is None and not (self._credentials or self._more_secrets):  # most nodes
            self._masker = _NO_SECRETS
        if self._masker is None:
            secrets: set[str] = set()
            for block in (self._credentials, *self._more_secrets):
                _secret_strings(block, secrets)
                secrets |= _encoded(block)
            # the escaped forms of a long secret too; a short one is masked as a whole value only
            forms = [_written_forms(s) for s in secrets if len(s) >= _MIN_SUBSTRING_SECRET]
            secrets.update(*forms)
            long = sorted((s for s in secrets if len(s) >= _MIN_SUBSTRING_SECRET), key=len)
            pattern = re.compile("|".join(map(re.escape, reversed(long)))) if long else None
            self._masker = (frozenset(secrets), pattern)
        return self._masker

    def used_inputs(self, keys: list[str] | None = None) -> dict[str, Any]:
        """`{key: context[key]}` for the used keys present in the context, sorted by key
        (`keys`: `sorted(used_keys)` when the caller has it already). When the node has no
        secrets to mask, values still in their message bytes stay bytes (the encoder copies
        them, instead of encoding the decoded value again), unless RTES could not read those
        bytes (`depth.unpublishable`): then a value read whole is published as the value read,
        and a large value the node read only in part (`descend`) as what stands for it
        (nested too deeply, or a number no double holds, beside the part read)."""
        ctx = self._context
        keys = sorted(self.used_keys) if keys is None else keys
        if isinstance(ctx, LazyContext):
            # a value that cannot be read stays out (the node failed on it already)
            unreadable = ctx.any_unreadable
            keys = [k for k in keys if k in ctx and not ctx.unreadable(k)] if unreadable else keys
            if not self.has_secrets():
                return {k: self._published(ctx, k) for k in keys if k in ctx}
            return {k: self._decoded(ctx, k) for k in keys if k in ctx}
        return {k: ctx[k] for k in keys if k in ctx}

    def _published(self, ctx: LazyContext, key: str) -> Any:
        """`used_inputs`' value of `key` without decoding it: its bytes, unless RTES could not
        read them. Then a value read whole is published as the value read (a number RTES's
        serde_json reads as infinite is the double it is, as Go reads it: `depth.decode`),
        one read only in part as what stands for it (`depth.unpublishable`). Looked at once
        per bytes and state of reading: the `running` and the final status ask alike."""
        raw = dict.__getitem__(ctx, key)  # ctx.raw(key), one call less per used key and step
        if type(raw) is not msgspec.Raw:
            return raw
        decoded = ctx.decoded(key)
        kept = self._stand_ins.get(key)
        if kept is None or kept[0] is not raw or kept[1] is not decoded:
            # a value read whole holds only numbers a double holds: only those serde_json
            # misreads can make its bytes unreadable to RTES, and they begin with known digits
            if decoded and not may_refuse(bytes(raw)):
                stand_in = None
            else:
                stand_in = depth.unpublishable(raw)
                if stand_in is not None and decoded:
                    stand_in = ctx[key]
            kept = self._stand_ins[key] = (raw, decoded, stand_in)
        return raw if kept[2] is None else kept[2]

    def _decoded(self, ctx: LazyContext, key: str) -> Any:
        """`used_inputs`' value of `key`, decoded (to be masked): what stands for it when it
        cannot be read (read only in part, the rest too deep or out of range; the node read
        what it needed, so the value is not marked unreadable)."""
        raw = ctx.raw(key)
        if type(raw) is not msgspec.Raw or ctx.decoded(key):
            return ctx[key]
        kept = self._stand_ins.get(key)
        if kept is None or kept[0] is not raw:
            kept = self._stand_ins[key] = (raw, False, depth.published(raw, key))
        return kept[2]

    # -- internals ---------------------------------------------------------------------------

    def _root(self, root: str, part: bool = False) -> tuple[bool, Any]:
        """(found, value) of a root name; records the context key it touched. `part`: the
        caller reads a path inside the value, so a value still in its message bytes is
        returned as `msgspec.Raw` (see `_lookup`)."""
        if root == _CREDENTIAL and self._credentials is not None:
            return True, self._credentials
        ctx = self._context
        get = ctx.undecoded if part and isinstance(ctx, LazyContext) else ctx.__getitem__
        key = "$" + root
        if key in ctx:
            self.used_keys.add(key)
            return True, get(key)
        name = self._aliases.get(root)
        if name is not None and "$" + name in ctx:
            self.used_keys.add("$" + name)
            return True, get("$" + name)
        self.used_keys.add(key)
        return False, None

    def _lookup(self, ref: str, *, literal_fallback: bool) -> Any:
        try:
            if len(ref) <= KEPT_REFERENCE_CHARS:
                root, segments = _parse(ref)
            else:
                root, segments = _parse_reference(ref)
        except ResolveError:
            if literal_fallback and ref in self._context:
                self.used_keys.add(ref)
                return self._context[ref]
            raise
        try:
            found, value = self._root(root, part=bool(segments))
        except UnreadableError as exc:  # too deep, a number out of range
            raise ResolveError(f"reference {ref}: {exc}") from exc
        if not found:
            if literal_fallback and ref in self._context:
                self.used_keys.add(ref)
                return self._context[ref]
            raise ResolveError(f"reference {ref}: node '{root}' not found in context")
        if type(value) is msgspec.Raw:
            # one field of a large value: decode the path, not the whole value
            try:
                ok, got = descend(value, segments, "the value it leads to")
                if ok:
                    return got
                value = depth.read(value, "value")  # _walk names what is wrong
            except UnreadableError as exc:
                self._unreadable_part(root)
                raise ResolveError(f"reference {ref}: {exc}") from exc
        return _walk(ref, root, value, segments)

    def _unreadable_part(self, root: str) -> None:
        """A path into the large value of `root` could not be read: the value is marked so,
        as a failed read of all of it would have (`used_inputs` leaves it out)."""
        ctx = self._context
        if isinstance(ctx, LazyContext):
            name = root if "$" + root in ctx else self._aliases.get(root, root)
            ctx.mark_unreadable("$" + name)

    def _resolve_str(self, text: str) -> Any:
        if text[0] == "$" and _REF.fullmatch(text):
            return self.lookup(text)
        if text.startswith("{{"):
            m = _WHOLE_TEMPLATE.fullmatch(text)
            if m is not None:
                return self.lookup(m.group(1))
        return _SCAN.sub(self._substitute, text)

    def _known_root(self, root: str) -> bool:
        """A node id or name of the workflow, or `credential` when the node has credentials
        (looked up in the aliases, not copied into a set per step: a 500-node workflow would
        pay for 1000 names at every node)."""
        if root in self._aliases or root in self._aliases.values():
            return True
        return root == _CREDENTIAL and self._credentials is not None

    def _substitute(self, m: re.Match[str]) -> str:
        root = m.group(2)
        if root is not None:
            ref = m.group(0)
            if "$" + root not in self._context and not self._known_root(root):
                self.used_keys.add("$" + root)
                return ref  # unknown root: plain text such as a price
            return render(self.lookup(ref))
        body = m.group(1)
        if body is None:
            return "$"  # the "$$" escape
        inner = body.strip()
        return render(self.lookup(inner)) if _REF.fullmatch(inner) else m.group(0)

    def _mask(
        self, value: Any, exact: frozenset[str], pattern: re.Pattern[str] | None, level: int = 1
    ) -> Any:
        if isinstance(value, str):
            if value in exact:
                return MASK
            return pattern.sub(MASK, value) if pattern is not None else value
        # what is deeper than any value a step lets in (statuses and completions wrap values
        # in a few levels) is not walked: it is replaced, never published unmasked
        if isinstance(value, dict | list | tuple) and level > depth.MAX_DEPTH + _WRAPPING:
            return depth.PLACEHOLDER
        if isinstance(value, dict):
            return {k: self._mask(v, exact, pattern, level + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._mask(v, exact, pattern, level + 1) for v in value]
        return value
