"""Tests of runeworker.engine.resolver: reference grammar, templates, errors, masking, render."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
from typing import Any
from urllib.parse import quote, quote_plus

import msgspec
import pytest
from requests.utils import requote_uri

from runeworker.engine import depth
from runeworker.engine.context import PART_MIN_BYTES, LazyContext, lazy
from runeworker.engine.resolver import MASK, Resolver, render
from runeworker.errors import ResolveError

# The context of the examples of upstream's services/rune-worker/pkg/resolver/resolver_test.go,
# plus a few keys for the other cases.
CONTEXT: dict[str, Any] = {
    "$http": {"status": 200, "body": {"values": [{"val": "first"}]}},
    "$json": [{"name": "A"}, {"name": "B"}],
    "$u": {"name": "Bob", "age": 41, "ratio": 0.5, "big": 1234567.0, "tags": ["x", "y"]},
    "$Filter": {"$json": [1, 2], "a-b": "dash", "none": None, "ok": True},
    "$Fetch_User": {"id": 7, "email": "bob@example.com"},
    "$evil": {"tpl": "{{ $credential.password }}", "ref": "$credential.password", "esc": "$$x"},
    "$flag": True,
    "$5": "five",
    "$grid": [[1, 2], [3, 4]],
}
CREDENTIALS = {"username": "admin", "password": "s3cr3t!", "pin": "42"}
ALIASES = {"node-7": "Fetch_User", "node-9": "NotRunYet"}


def resolver() -> Resolver:
    return Resolver(CONTEXT, credentials=CREDENTIALS, aliases=ALIASES)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Upstream's resolver examples (with our fixed outcomes).
        ("$http.status", 200),
        ("$http.body.values[0].val", "first"),
        ("$json[1].name", "B"),
        ("Status: $http.status", "Status: 200"),
        ("{{ $json.a * 2 }}", "{{ $json.a * 2 }}"),
        # Whole-value references keep the JSON type.
        ("$http.body", {"values": [{"val": "first"}]}),
        ("$json", [{"name": "A"}, {"name": "B"}]),
        ("$flag", True),
        ("$Filter.none", None),
        ("$Filter.$json", [1, 2]),
        ("$Filter.a-b", "dash"),
        ("$u.tags[1]", "y"),
        ("$grid[1][0]", 3),
        ("$grid[0][1]", 2),
        # Templates: whole value typed, inside text rendered, spaces optional.
        ("{{ $http.status }}", 200),
        ("{{$http.status}}", 200),
        ("{{   $json[0]   }}", {"name": "A"}),
        ("https://x/{{$Fetch_User.id}}/profile", "https://x/7/profile"),
        ("{{ $u.name }} is {{$u.age}}", "Bob is 41"),
        ("a {{ $json.a * 2 }} b $u.name", "a {{ $json.a * 2 }} b Bob"),
        ("{{ $u.name }} and {{ 1 + 2 }}", "Bob and {{ 1 + 2 }}"),
        # Rendering inside text.
        ("n=$u.big", "n=1234567"),
        ("r=$u.ratio", "r=0.5"),
        ("ok=$Filter.ok none=$Filter.none", "ok=true none=null"),
        ("tags=$u.tags", 'tags=["x","y"]'),
        ("item $json[0]", 'item {"name":"A"}'),
        # Trailing dot is not part of the path.
        ("Hi $u.name.", "Hi Bob."),
        ("Hi $u.name...", "Hi Bob..."),
        ("Hi $u.", 'Hi {"name":"Bob","age":41,"ratio":0.5,"big":1234567.0,"tags":["x","y"]}.'),
        # "$$" escape and lone "$".
        ("$$http.status", "$http.status"),
        ("Price: $$5", "Price: $5"),
        ("$$", "$"),
        ("costs 5$ or $ 6", "costs 5$ or $ 6"),
        # Text reference with an unknown root stays literal; a known root resolves.
        ("Id $missing.x!", "Id $missing.x!"),
        ("costs $10.50 today", "costs $10.50 today"),
        ("code $5", "code five"),
        # Credentials.
        ("$credential.password", "s3cr3t!"),
        ("{{ $credential.password }}", "s3cr3t!"),
        ("user={{$credential.username}} pin=$credential.pin", "user=admin pin=42"),
        # Aliases: node id finds the node's output by name.
        ("$node-7.email", "bob@example.com"),
        ("mail $node-7.email.", "mail bob@example.com."),
        # Non-string scalars and strings without references are unchanged.
        (5, 5),
        (1.5, 1.5),
        (None, None),
        (False, False),
        ("plain text", "plain text"),
        ("", ""),
        ("{{ no refs }}", "{{ no refs }}"),
        # Recursion through dicts (keys untouched) and lists.
        (
            {"$http.status": ["$u.name", {"k": "v=$u.age"}], "n": 3},
            {"$http.status": ["Bob", {"k": "v=41"}], "n": 3},
        ),
    ],
)
def test_resolve_value(value: Any, expected: Any) -> None:
    assert resolver().resolve_value(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # Whole-value references that fail are errors.
        ("$missing.x", "reference $missing.x: node 'missing' not found in context"),
        ("{{ $missing.x }}", "reference $missing.x: node 'missing' not found in context"),
        ("$http.nope", "reference $http.nope: field 'nope' not found at $http"),
        (
            "$http.body.values[3]",
            "reference $http.body.values[3]: index 3 out of range "
            "(array of 1) at $http.body.values",
        ),
        # One past the end is out of range too (never a bare IndexError).
        ("$json[2]", "reference $json[2]: index 2 out of range (array of 2) at $json"),
        ("$json[0].nope", "reference $json[0].nope: field 'nope' not found at $json[0]"),
        (
            "$http.status.x",
            "reference $http.status.x: cannot read field 'x' of a number at $http.status",
        ),
        (
            "$Filter.none.x",
            "reference $Filter.none.x: cannot read field 'x' of null at $Filter.none",
        ),
        ("$flag.x", "reference $flag.x: cannot read field 'x' of a boolean at $flag"),
        ("$u.name.x", "reference $u.name.x: cannot read field 'x' of a string at $u.name"),
        ("$u.tags.x", "reference $u.tags.x: cannot read field 'x' of an array at $u.tags"),
        ("$u.name[0]", "reference $u.name[0]: cannot index a string with [0] at $u.name"),
        ("$http[0]", "reference $http[0]: cannot index an object with [0] at $http"),
        ("$json[x]", "reference $json[x]: bad index [x], expected [n] with n >= 0"),
        ("$json[-1]", "reference $json[-1]: bad index [-1], expected [n] with n >= 0"),
        ("$json[]", "reference $json[]: bad index [], expected [n] with n >= 0"),
        (
            "$json[1234567890123456789]",
            "reference $json[1234567890123456789]: index of 19 digits is out of range",
        ),
        (
            "$json[" + "9" * 5000 + "]",
            "reference $json[" + "9" * 54 + "...: index of 5000 digits is out of range",
        ),
        ("$json[0", "reference $json[0: missing ']' after '['"),
        ("$http..status", "reference $http..status: empty field name at position 5"),
        (
            "$credential.token",
            "reference $credential.token: field 'token' not found at $credential",
        ),
        # Text references whose root exists but whose path fails are errors.
        ("Status: $http.code now", "reference $http.code: field 'code' not found at $http"),
        (
            "first=$json[5].name",
            "reference $json[5].name: index 5 out of range (array of 2) at $json",
        ),
        # Known roots (alias ids and names) that are not in the context are errors in text too.
        ("x $node-9.id", "reference $node-9.id: node 'node-9' not found in context"),
        ("x $NotRunYet.id", "reference $NotRunYet.id: node 'NotRunYet' not found in context"),
        # Templates are strict even in text and with an unknown root.
        ("Id {{ $missing.x }}!", "reference $missing.x: node 'missing' not found in context"),
    ],
)
def test_resolve_value_errors(value: str, message: str) -> None:
    with pytest.raises(ResolveError) as info:
        resolver().resolve_value(value)
    assert str(info.value) == message


def test_resolve_params_reports_per_parameter_errors() -> None:
    params = {
        "url": "https://x/$Fetch_User.id",
        "bad": "$missing.x",
        "body": {"status": "$http.status", "oops": "$http.nope"},
        "expr": "$u.name == 'Bob'",
        "count": 3,
    }
    resolved, errors = resolver().resolve_params(params, skip=frozenset({"expr"}))
    assert resolved == {
        "url": "https://x/7",
        "bad": "$missing.x",
        "body": {"status": "$http.status", "oops": "$http.nope"},
        "expr": "$u.name == 'Bob'",
        "count": 3,
    }
    assert errors == {
        "bad": "reference $missing.x: node 'missing' not found in context",
        "body": "reference $http.nope: field 'nope' not found at $http",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$evil.tpl", "{{ $credential.password }}"),
        ("$evil.ref", "$credential.password"),
        ("{{ $evil.tpl }}", "{{ $credential.password }}"),
        ("say $evil.tpl", "say {{ $credential.password }}"),
        ("say $evil.ref and {{$evil.esc}}", "say $credential.password and $$x"),
        ("$evil", CONTEXT["$evil"]),
    ],
)
def test_context_values_are_never_resolved_again(value: str, expected: Any) -> None:
    assert resolver().resolve_value(value) == expected


@pytest.mark.parametrize(
    ("values", "used"),
    [
        (["$http.status"], {"$http"}),
        (["a $u.name b {{ $json[0].name }}"], {"$u", "$json"}),
        (["$node-7.email"], {"$Fetch_User"}),
        (["$credential.password"], set()),
        (["Id $missing.x!"], {"$missing"}),
        (["$missing.x", "$http.nope"], {"$missing", "$http"}),
        (["{{ $json.a * 2 }}", "no refs", 5], set()),
    ],
)
def test_used_keys_include_failed_references(values: list[Any], used: set[str]) -> None:
    r = resolver()
    for value in values:
        with contextlib.suppress(ResolveError):
            r.resolve_value(value)
    assert r.used_keys == used


def test_used_inputs_lists_existing_keys_only() -> None:
    r = resolver()
    r.resolve_params({"a": "$http.status", "b": "$missing.x", "c": "$node-7.id"})
    assert r.used_inputs() == {"$Fetch_User": CONTEXT["$Fetch_User"], "$http": CONTEXT["$http"]}


def test_lookup_is_strict_and_typed() -> None:
    r = resolver()
    assert r.lookup("$http.body.values[0]") == {"val": "first"}
    assert r.lookup("$u.ratio") == 0.5
    with pytest.raises(ResolveError, match=r"^reference Status: a reference starts with \$"):
        r.lookup("Status")
    with pytest.raises(ResolveError, match=r"^reference \$u\.name\.: trailing dot$"):
        r.lookup("$u.name.")
    with pytest.raises(ResolveError, match=r"^reference \$u x: unexpected ' ' at position 2$"):
        r.lookup("$u x")


def test_strict_lookup_never_reads_a_literal_key() -> None:
    r = Resolver({"$my node": "x", "$a.b": 1})
    with pytest.raises(ResolveError, match=r"^reference \$my node: unexpected ' ' at position 3$"):
        r.lookup("$my node")
    with pytest.raises(ResolveError, match=r"^reference \$a\.b: node 'a' not found in context$"):
        r.lookup("$a.b")


def test_lookup_direct_falls_back_to_literal_key() -> None:
    context = {"$a.b": 1, "$my node": "x", "$a2": {"b": 2}}
    r = Resolver(context)
    assert r.lookup_direct("$a.b") == 1
    assert r.lookup_direct("$my node") == "x"
    assert r.lookup_direct("$a2.b") == 2
    assert r.used_keys == {"$a", "$a.b", "$my node", "$a2"}
    with pytest.raises(ResolveError, match="node 'a' not found in context"):
        r.lookup("$a.b")
    with pytest.raises(ResolveError, match="field 'c' not found"):
        r.lookup_direct("$a2.c")


def test_credential_root_without_credentials_uses_the_context() -> None:
    r = Resolver({"$credential": {"x": 1}})
    assert r.resolve_value("$credential.x") == 1
    assert Resolver({}).resolve_value("key $credential.x") == "key $credential.x"
    with pytest.raises(ResolveError, match="node 'credential' not found in context"):
        Resolver({}).resolve_value("$credential.x")


# services/rune-worker/pkg/resolver/reference_path_test.go: every path of
# TestParsePathSegmentsStrict_InvalidPaths is refused, whatever the context holds (a key
# that happens to be spelt like the bad segment is not read);
# TestNavigateValuePath_StrictArrayValidation, TestResolveReferenceValue_DirectLookupFallback
# and TestResolveReferenceValue_RootArrayIndex.
@pytest.mark.parametrize(
    "path", ["", "user..name", "user.", "items[]", "items[abc]", "items[0", "items]"]
)
def test_upstreams_invalid_paths_are_refused(path: str) -> None:
    odd_keys = {"": 1, "user": {"": 2, "name": 3}, "items": ["a"], "items]": 4, "items[0": 5}
    r = Resolver({"$x": odd_keys})
    with pytest.raises(ResolveError):
        r.lookup(f"$x.{path}")
    with pytest.raises(ResolveError):
        r.lookup_direct(f"$x.{path}")


@pytest.mark.parametrize("path", ["items[10]", "items[-1]", "items[foo]"])
def test_upstreams_strict_array_indexes(path: str) -> None:
    with pytest.raises(ResolveError):
        Resolver({"$data": {"items": ["a", "b"]}}).lookup(f"$data.{path}")


def test_upstreams_direct_lookup_fallback_and_root_array_index() -> None:
    r = Resolver({"$input": {"name": "primary"}, "$raw": "raw-value"})
    assert r.lookup_direct("$input.name") == "primary"
    assert r.used_keys == {"$input"}
    assert Resolver({"$input.name": "fallback"}).lookup_direct("$input.name") == "fallback"
    titles = Resolver({"$json": [{"id": 1.0, "title": "first"}, {"id": 2.0, "title": "second"}]})
    assert titles.lookup("$json[1].title") == "second"
    assert titles.used_keys == {"$json"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3cr3t!", "***"),
        ("admin", "admin"),
        ("42", "***"),
        ("Basic admin:s3cr3t!", "Basic admin:***"),
        ("answer 42", "answer 42"),  # secrets under 4 chars are masked only as whole values
        ({"h": ["s3cr3t!", 42, "x s3cr3t!x"], "p": None}, {"h": ["***", 42, "x ***x"], "p": None}),
        ("nothing here", "nothing here"),
    ],
)
def test_mask(value: Any, expected: Any) -> None:
    assert resolver().mask(value) == expected


def test_mask_prefers_the_longest_secret_and_copies() -> None:
    r = Resolver({}, credentials={"a": "abcd", "b": "abcdefgh", "n": 5, "nested": {"c": "zzzz"}})
    original = {"t": ["xabcdefghx abcd zzzz"]}
    assert r.mask(original) == {"t": ["x***x *** ***"]}
    assert original == {"t": ["xabcdefghx abcd zzzz"]}
    assert r.mask(original) is not original
    assert Resolver({}).mask({"a": "abcd"}) == {"a": "abcd"}


def test_mask_reaches_secrets_inside_credential_lists() -> None:
    r = Resolver({}, credentials={"api_keys": ["key-one-1", "key-two-2"], "scopes": []})
    assert r.mask(["key-one-1", "x key-two-2 y", "key"]) == ["***", "x *** y", "key"]


def test_secrets_all_shorter_than_four_characters_are_still_masked() -> None:
    r = Resolver({}, credentials={"pin": "123"})  # a PIN: no substring pattern at all
    assert r.has_secrets()
    value = {"pin": "123", "text": "call 123 now", "n": 123}
    assert r.mask(value) == {"pin": "***", "text": "call 123 now", "n": 123}


def test_basic_auth_base64_of_the_credentials_is_masked() -> None:
    # A server that echoes the request hands back the Authorization header.
    token = base64.b64encode(b"ann:s3cr3t!").decode()
    r = Resolver({}, credentials={"username": "ann", "password": "s3cr3t!"})
    assert r.mask({"echo": f"Basic {token}"}) == {"echo": "Basic ***"}
    # Without a username a client sends ":password".
    alone = base64.b64encode(b":s3cr3t!").decode()
    assert Resolver({}, credentials={"password": "s3cr3t!"}).mask(alone) == "***"


def test_a_secret_pasted_with_surrounding_whitespace_is_masked_trimmed_too() -> None:
    # The http node trims credential values before it sends them (`Bearer tok_...`), so an echo
    # server returns the trimmed text.
    r = Resolver({}, credentials={"token": " tok_4711abc\n", "pin": "12\n"})
    masked = r.mask({"echo": "Bearer tok_4711abc", "pin": "12"})
    assert masked == {"echo": "Bearer ***", "pin": "***"}
    assert Resolver({}, credentials={"blank": " \n"}).mask({"empty": ""}) == {"empty": ""}


# A generated password holds what JSON, Python's repr and URLs escape.
SYMBOLS = 'pa"ss\\Wo rd/\u00e9+4711'


@pytest.mark.parametrize(
    ("form", "written"),
    [
        ("json", msgspec.json.encode(SYMBOLS).decode()),  # {{ $credential }} inside text
        ("ascii json", json.dumps(SYMBOLS)),  # json.dumps, as an SDK's error may quote it
        ("repr", repr(SYMBOLS)),  # an error message quoting a parameter with !r
        ("requests url", f'"{requote_uri(SYMBOLS)}"'),  # a prepared URL in an http error
        ("url component", f'"{quote(SYMBOLS, safe="")}"'),
        ("form body", f'"{quote_plus(SYMBOLS)}"'),  # application/x-www-form-urlencoded
        # a header echoed by a server that reads header bytes as ISO-8859-1 (RFC 9110's
        # obs-text: Python's http.server, Node's http): found by tests/fuzz, an integration's
        # echoed `Authorization` showed a token holding U+202E
        ("header read as latin-1", f'"{SYMBOLS.encode().decode("latin-1")}"'),
    ],
)
def test_a_secret_is_masked_in_the_escaped_forms_it_is_written_in(form: str, written: str) -> None:
    r = Resolver({}, credentials={"username": "ann", "password": SYMBOLS})
    assert SYMBOLS not in written  # the form differs from the secret itself
    assert r.mask(f"got {written} back") in (f'got "{MASK}" back', f"got '{MASK}' back"), form


@pytest.mark.parametrize(
    "credentials",
    [
        None,
        {"username": "ann", "password": ""},  # nothing secret to encode
        {"username": "ann", "password": 1234},  # not a string: no Basic form
        {"host": "mail.example.org", "port": "25", "user": "ann"},  # public fields only
    ],
)
def test_nothing_to_mask_returns_the_value_itself(credentials: dict[str, Any] | None) -> None:
    r = Resolver({}, credentials=credentials)
    assert not r.has_secrets()
    value = {"a": ["ann:", "YW5uOg==", "mail.example.org"]}
    assert r.mask(value) is value


def test_public_credential_fields_are_known_by_their_last_dotted_part() -> None:
    credentials = {"smtp.host": "mail.example.org", "a.b.port": "2525", "smtp.pass": "pw-secret"}
    r = Resolver({}, credentials=credentials)
    assert r.mask(["mail.example.org", "2525", "pw-secret"]) == [
        "mail.example.org",
        "2525",
        "***",
    ]


def test_used_inputs_keep_message_bytes_unless_something_is_secret() -> None:
    def used(credentials: dict[str, Any] | None) -> dict[str, Any]:
        context = LazyContext({"$a": msgspec.Raw(b'{"x":1}'), "$b": msgspec.Raw(b"[2]")})
        r = Resolver(context, credentials=credentials)
        r.resolve_params({"p": "$a.x", "q": "$missing"})
        return r.used_inputs()

    assert used(None) == {"$a": msgspec.Raw(b'{"x":1}')}
    assert used({"token": "t0k3n-secret"}) == {"$a": {"x": 1}}  # decoded, ready to mask
    plain = Resolver({"$a": {"x": 1}})
    plain.resolve_value("$a.x")
    assert plain.used_inputs() == {"$a": {"x": 1}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (200, "200"),
        (-3, "-3"),
        (200.0, "200"),
        (1234567.0, "1234567"),
        (-0.0, "0"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (1e-7, "0.0000001"),
        (1.5e-7, "0.00000015"),
        (1e20, "100000000000000000000"),
        (1.5e20, "150000000000000000000"),
        (1e21, "1e+21"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (float("nan"), "NaN"),
        (datetime.date(2024, 1, 2), "2024-01-02"),  # not a JSON type: its str()
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ({"a": 1, "b": [1.5, None]}, '{"a":1,"b":[1.5,null]}'),
        ([], "[]"),
    ],
)
def test_render(value: Any, expected: str) -> None:
    assert render(value) == expected


def test_embedded_credential_blocks_are_masked_but_not_addressable() -> None:
    """Credentials the API embeds in parameters (agent tools, MCP servers) are secrets of the
    node too; `$credential` still reads only the node's own."""
    tool = {"type": "basic_auth", "username": "u", "password": "tool-pass"}
    resolver = Resolver(
        {}, credentials={"token": "node-secret"}, secrets=[tool, {"value": "mcp-key-1"}]
    )
    value = {"a": "x tool-pass y", "b": "mcp-key-1", "c": "Basic dTp0b29sLXBhc3M=", "d": "u"}
    assert resolver.mask(value) == {"a": "x *** y", "b": "***", "c": "Basic ***", "d": "u"}
    assert resolver.mask("node-secret") == "***"
    assert resolver.lookup("$credential.token") == "node-secret"
    with pytest.raises(ResolveError, match=r"field 'value' not found at \$credential"):
        resolver.lookup("$credential.value")
    assert Resolver({}, secrets=[{"value": "abcd"}]).has_secrets()


def test_a_path_into_a_large_value_too_deep_to_read_is_a_resolve_error() -> None:
    """A large value still in its message bytes is read one path at a time; a path it does not
    have makes the resolver read it whole, and a value nested too deeply then fails the
    reference (a resolve error naming it, not a crash), while its readable parts resolve."""
    deep: dict[str, Any] = {"y": 0}
    for _ in range(depth.MAX_DEPTH + 50):
        deep = {"y": deep}
    big = {"pad": "x" * (PART_MIN_BYTES * 2), "y": deep}
    resolver = Resolver(lazy({"$big": msgspec.Raw(msgspec.json.encode(big))}))
    assert resolver.lookup("$big.pad") == big["pad"]
    with pytest.raises(ResolveError) as info:
        resolver.lookup("$big.x")
    assert str(info.value) == f"reference $big.x: value is {depth.TOO_DEEP}"


def test_masking_walks_as_deep_as_a_step_publishes_and_no_deeper() -> None:
    """Statuses and completions wrap a value in a few levels: what fits is masked, a container
    below that is replaced by the placeholder, never published unmasked."""
    resolver = Resolver({}, credentials={"password": "hunter2-s3cret"})

    def nested(levels: int) -> Any:
        value: Any = ["hunter2-s3cret"]
        for _ in range(levels - 1):
            value = {"k": value}
        return value

    fits = depth.MAX_DEPTH + 4  # _WRAPPING levels above MAX_DEPTH
    masked = resolver.mask(nested(fits))
    for _ in range(fits - 1):
        masked = masked["k"]
    assert masked == ["***"]
    cut = resolver.mask(nested(fits + 1))
    for _ in range(fits - 1):
        cut = cut["k"]
    assert cut == {"k": depth.PLACEHOLDER}


def test_parameters_a_node_reads_itself_are_kept_unless_too_deep() -> None:
    rules = [{"value": "$x", "operator": "==", "compare": 1}]
    resolved, errors = Resolver({"$x": 1}).resolve_params(
        {"rules": rules, "name": "$x"}, frozenset({"rules"})
    )
    assert (resolved, errors) == ({"rules": rules, "name": 1}, {})


def test_an_opening_never_closed_is_text_and_the_template_after_it_resolves() -> None:
    """A template's body holds no `{{`: in `{{ a {{ $x }}` the template is the last one. The
    scan from an unclosed opening stops at the next one, so a parameter of many unclosed
    openings is read in linear time (with the old scan, 120 KB of them took 14 s)."""
    r = Resolver({"$x": 7})
    assert r.resolve_value("{{ a {{ $x }}") == "{{ a 7"
    assert r.resolve_value("{{ $x }} {{ b") == "7 {{ b"
    many = "{{ " * 40_000 + "$x"
    assert r.resolve_value(many) == "{{ " * 40_000 + "7"


# -- edges found by mutation testing (docs/MUTATION.md) ------------------------------------------


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("$a.b]c", "reference $a.b]c: unexpected ']' at position 4"),
        ("$a.b]c]", "reference $a.b]c]: unexpected ']' at position 4"),  # the first one
        ("$a[0].bc]", "reference $a[0].bc]: unexpected ']' at position 8"),
    ],
)
def test_a_bracket_closed_without_being_opened_is_named_where_it_is(ref: str, message: str) -> None:
    with pytest.raises(ResolveError) as info:
        Resolver({"$a": [{"b": 1}]}).lookup(ref)
    assert str(info.value) == message


def test_an_index_of_eighteen_digits_is_looked_up_and_longer_ones_cut_at_eighty() -> None:
    resolver = Resolver({"$json": [1, 2]})
    index = "9" * 18
    with pytest.raises(ResolveError) as info:
        resolver.lookup(f"$json[{index}]")
    assert (
        str(info.value)
        == f"reference $json[{index}]: index {index} out of range (array of 2) at $json"
    )
    for length, shown in ((80, None), (81, "cut")):
        ref = "$json[" + "9" * (length - 7) + "]"
        assert len(ref) == length
        with pytest.raises(ResolveError) as info:
            resolver.lookup(ref)
        expected = ref if shown is None else ref[:60] + "..."
        assert (
            str(info.value) == f"reference {expected}: index of {length - 7} digits is out of range"
        )


def test_a_secret_of_the_shortest_length_masked_in_part_is_masked_in_its_written_forms() -> None:
    """A secret of `_MIN_SUBSTRING_SECRET` (4) characters is masked inside text, and so are
    its escaped forms (here JSON's and the URL's, of a quote and a space)."""
    resolver = Resolver({}, credentials={"token": 'a"b '})
    assert resolver.mask('sent {"t": "a\\"b "} to ?t=a%22b%20') == 'sent {"t": "***"} to ?t=***'


def test_a_large_value_unreadable_in_part_is_left_out_under_the_name_it_was_reached_by() -> None:
    """A path into a large value that cannot be read marks the value unreadable whether the
    reference named its context key or the node's id (an alias): `used_inputs` leaves it out,
    and keeps the values that were read."""
    deep: dict[str, Any] = {"y": 0}
    for _ in range(depth.MAX_DEPTH + 50):
        deep = {"y": deep}
    big = msgspec.json.encode({"pad": "x" * (PART_MIN_BYTES * 2), "y": deep})
    for ref in ("$Source.x", "$src.x"):
        ctx = lazy({"$Source": msgspec.Raw(big), "$other": msgspec.Raw(b"[1]")})
        # a context key wins over an alias of the same name, as when the value was found
        aliases = {"src": "Source", "Source": "other"}
        resolver = Resolver(ctx, aliases=aliases)
        assert resolver.lookup("$other") == [1]
        with pytest.raises(ResolveError):
            resolver.lookup(ref)
        assert list(resolver.used_inputs()) == ["$other"], ref
