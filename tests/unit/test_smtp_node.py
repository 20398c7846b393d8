"""The smtp node against a real local SMTP server (aiosmtpd on loopback, trustme certificates).

The resolver masks secret credential values (not host, port or username),
so error texts name the server.
"""

from __future__ import annotations

import email
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from runeworker.engine.registry import NodeContext, NodeSettings
from runeworker.engine.resolver import Resolver
from runeworker.engine.workflow import parse_definition
from runeworker.errors import NodeError
from runeworker.nodes import smtp
from runeworker.nodes.smtp import Server, parse_server, plaintext_login_allowed

USER = "mailer"
PASSWORD = "s3cret-Passw0rd"
WORKFLOW = parse_definition(b'{"nodes":[{"id":"n1","type":"smtp"}],"edges":[]}')


@dataclass
class Delivery:
    """What the server received for one message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes  # as received, CRLF line ends
    login: bytes | None
    encrypted: bool


class Recorder:
    """aiosmtpd handler that keeps every message and refuses the addresses in `refuse`."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        auth = session.auth_data if isinstance(session.auth_data, LoginPassword) else None
        self.deliveries.append(
            Delivery(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                message=email.message_from_bytes(
                    raw.replace(b"\r\n", b"\n"), policy=default_policy
                ),
                raw=raw,
                login=auth.login if auth else None,
                encrypted=server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 Message accepted"


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    """Accepts USER/PASSWORD; the refusal echoes the password so masking is put to the test."""
    if data.login == USER.encode() and data.password == PASSWORD.encode():
        return AuthResult(success=True, auth_data=data)
    return AuthResult(
        success=False, handled=False, message=f"535 5.7.8 bad password {data.password.decode()}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Certs:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return Certs(ca_file, context)


@pytest.fixture
def trust_ca(certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the test CA the only trusted root (ssl.create_default_context reads this)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_file))


StartServer = Callable[..., tuple[Recorder, int]]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> tuple[Recorder, int]:
        recorder, port = Recorder(), free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return recorder, port

    yield start
    for controller in controllers:
        controller.stop()


def make_ctx(
    params: dict[str, Any], credentials: dict[str, Any], timeout: float = 5.0
) -> NodeContext:
    return NodeContext(
        workflow_id="wf-1",
        execution_id="ex-1",
        node=WORKFLOW.node("n1"),
        params=params,
        context={},
        workflow=WORKFLOW,
        resolver=Resolver({}, credentials=credentials),
        credentials={**credentials, "type": "smtp"},
        settings=NodeSettings(smtp_timeout=timeout),
    )


def send(
    params: dict[str, Any], credentials: dict[str, Any], timeout: float = 5.0
) -> dict[str, Any]:
    return smtp.run(make_ctx(params, credentials, timeout))


def failure(params: dict[str, Any], credentials: dict[str, Any], timeout: float = 5.0) -> str:
    with pytest.raises(NodeError) as info:
        send(params, credentials, timeout)
    assert info.value.code == "NODE_EXECUTION_FAILED"
    return str(info.value)


BASIC = {"from": "sender@example.org", "to": "rcpt@example.org", "subject": "Hi", "body": "Hello"}


# -- delivery ---------------------------------------------------------------------------------


def test_plain_send_envelope_headers_and_body(start_server: StartServer) -> None:
    recorder, port = start_server()
    params = {
        "from": "Sender <sender@example.org>",
        "to": "a@example.org, b@example.org",
        "cc": ["c@example.org"],
        "bcc": "hidden@example.org",
        "subject": "Report",
        "body": "Line one\nLine two",
    }
    out = send(params, {"host": "127.0.0.1", "port": str(port)})

    [got] = recorder.deliveries
    assert got.mail_from == "sender@example.org"
    assert got.rcpt_tos == ["a@example.org", "b@example.org", "c@example.org", "hidden@example.org"]
    msg = got.message
    assert "Bcc" not in msg
    assert b"hidden@example.org" not in got.raw
    assert got.raw.count(b"\n") == got.raw.count(b"\r\n")
    assert msg["From"] == "Sender <sender@example.org>"
    assert msg["To"] == "a@example.org, b@example.org"
    assert msg["Cc"] == "c@example.org"
    assert msg["Subject"] == "Report"
    assert msg["Message-ID"] == out["message_id"]
    assert out["message_id"].endswith("@example.org>")
    assert abs(time.time() - parsedate_to_datetime(msg["Date"]).timestamp()) < 60
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content() == "Line one\nLine two\n"
    assert got.login is None and not got.encrypted
    duration = out.pop("duration_ms")
    assert isinstance(duration, int) and duration >= 0
    out.pop("message_id")
    assert out == {
        "success": True,
        "message": "Email sent successfully",
        "from": "Sender <sender@example.org>",
        "to": ["a@example.org", "b@example.org"],
        "cc": ["c@example.org"],
        "bcc": ["hidden@example.org"],
        "subject": "Report",
        "recipients": 4,
    }


def test_list_recipients_drop_non_strings_and_duplicates(start_server: StartServer) -> None:
    recorder, port = start_server()
    params = {
        **BASIC,
        "to": ["a@example.org", 5, None, "Bee <b@example.org>"],
        "cc": ["a@example.org", {"x": 1}],
    }
    out = send(params, {"host": "127.0.0.1", "port": port})
    assert out["to"] == ["a@example.org", "Bee <b@example.org>"]
    assert out["cc"] == ["a@example.org"]
    assert out["recipients"] == 2
    assert recorder.deliveries[0].rcpt_tos == ["a@example.org", "b@example.org"]


def test_html_param_sends_multipart_alternative(start_server: StartServer) -> None:
    recorder, port = start_server()
    params = {**BASIC, "body": "Plain version", "html": "<p>HTML <b>version</b></p>"}
    send(params, {"host": "127.0.0.1", "port": port})
    msg = recorder.deliveries[0].message
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content() == "Plain version\n"
    assert parts[1].get_content() == "<p>HTML <b>version</b></p>\n"


def test_body_type_html_derives_the_text_part(start_server: StartServer) -> None:
    recorder, port = start_server()
    html = "<html><head><style>p{}</style></head><body><h1>Title</h1><p>Hello &amp; bye</p></body>"
    send({**BASIC, "body": html, "body_type": "HTML"}, {"host": "127.0.0.1", "port": port})
    parts = list(recorder.deliveries[0].message.iter_parts())
    assert parts[0].get_content() == "Title\nHello & bye\n"
    assert parts[1].get_content() == html + "\n"


def test_non_ascii_subject_and_names_are_rfc2047_encoded(start_server: StartServer) -> None:
    recorder, port = start_server()
    subject = "Grüße — 日本語 report"
    params = {**BASIC, "to": "Jürgen Groß <j@example.org>", "subject": subject, "body": "Ça va ?"}
    send(params, {"host": "127.0.0.1", "port": port})
    got = recorder.deliveries[0]
    headers = got.raw.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii()
    assert b"Subject: =?utf-8?" in headers
    assert got.message["Subject"] == subject
    assert got.message["To"].addresses[0].display_name == "Jürgen Groß"
    assert got.message.get_content() == "Ça va ?\n"


def test_non_string_subject_and_body_are_rendered(start_server: StartServer) -> None:
    recorder, port = start_server()
    out = send(
        {**BASIC, "subject": 1500000.0, "body": {"a": [1, True]}},
        {"host": "127.0.0.1", "port": port},
    )
    assert out["subject"] == "1500000"
    assert recorder.deliveries[0].message.get_content() == '{"a":[1,true]}\n'


def test_partly_refused_recipients_are_reported(start_server: StartServer) -> None:
    recorder, port = start_server()
    recorder.refuse.add("gone@example.org")
    out = send(
        {**BASIC, "to": "gone@example.org, rcpt@example.org"}, {"host": "127.0.0.1", "port": port}
    )
    assert out["refused"] == {"gone@example.org": "550 5.1.1 no such user here"}
    assert recorder.deliveries[0].rcpt_tos == ["rcpt@example.org"]


def test_all_recipients_refused_is_an_error(start_server: StartServer) -> None:
    recorder, port = start_server()
    recorder.refuse.add("rcpt@example.org")
    assert failure(BASIC, {"host": "127.0.0.1", "port": port}) == (
        f"failed to send email: all recipients refused by 127.0.0.1:{port}: "
        "rcpt@example.org: 550 5.1.1 no such user here"
    )


# -- authentication and TLS -------------------------------------------------------------------


def test_auth_on_loopback_without_tls(start_server: StartServer) -> None:
    recorder, port = start_server(authenticator=authenticator, auth_require_tls=False)
    creds = {"host": "127.0.0.1", "port": port, "username": USER, "password": PASSWORD}
    assert send(BASIC, creds)["success"] is True
    assert recorder.deliveries[0].login == USER.encode()


def test_refused_auth_names_the_reason_and_masks_the_password(start_server: StartServer) -> None:
    recorder, port = start_server(authenticator=authenticator, auth_require_tls=False)
    wrong = "wrong-Passw0rd"
    creds = {"host": "127.0.0.1", "port": port, "username": USER, "password": wrong}
    text = failure(BASIC, creds)
    assert text == (
        f"failed to send email: authentication refused by 127.0.0.1:{port}: "
        "535 5.7.8 bad password ***"
    )
    assert wrong not in text
    assert recorder.deliveries == []


@pytest.mark.usefixtures("trust_ca")
def test_starttls_then_auth(start_server: StartServer, certs: Certs) -> None:
    recorder, port = start_server(
        tls_context=certs.server_context, require_starttls=True, authenticator=authenticator
    )
    creds = {
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "security": "STARTTLS",
    }
    send(BASIC, creds)
    [got] = recorder.deliveries
    assert got.encrypted and got.login == USER.encode()


@pytest.mark.usefixtures("trust_ca")
def test_starttls_is_used_when_offered_by_default(start_server: StartServer, certs: Certs) -> None:
    recorder, port = start_server(tls_context=certs.server_context, require_starttls=True)
    send(BASIC, {"host": "127.0.0.1", "port": port})
    assert recorder.deliveries[0].encrypted


def test_untrusted_certificate_fails_unless_ignore_ssl(
    start_server: StartServer, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_ca = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    recorder, port = start_server(tls_context=certs.server_context, require_starttls=True)
    creds = {"host": "127.0.0.1", "port": port}
    assert failure(BASIC, creds).startswith(
        f"failed to send email: TLS certificate of 127.0.0.1:{port} not accepted: "
        "unable to get local issuer certificate"
    )
    assert send({**BASIC, "ignore_ssl": True}, creds)["success"] is True
    assert recorder.deliveries[0].encrypted


def test_explicit_starttls_without_offer_fails(start_server: StartServer) -> None:
    recorder, port = start_server()
    creds = {"host": "127.0.0.1", "port": port, "security": "starttls"}
    assert failure(BASIC, creds) == (
        f"failed to send email: server 127.0.0.1:{port} does not offer STARTTLS"
    )
    assert recorder.deliveries == []


@pytest.mark.usefixtures("trust_ca")
def test_implicit_tls(start_server: StartServer, certs: Certs) -> None:
    # aiosmtpd counts only STARTTLS as TLS for AUTH; this link is encrypted from the start.
    recorder, port = start_server(
        ssl_context=certs.server_context, authenticator=authenticator, auth_require_tls=False
    )
    creds = {
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "security": "ssl",
    }
    send(BASIC, creds)
    [got] = recorder.deliveries
    assert got.encrypted and got.login == USER.encode()


# -- connection failures ----------------------------------------------------------------------


def test_connection_refused() -> None:
    port = free_port()
    creds = {"host": "127.0.0.1", "port": port, "username": USER, "password": PASSWORD}
    text = failure(BASIC, creds)
    assert text == f"failed to send email: connection to 127.0.0.1:{port} refused"


def test_timeout_when_the_server_never_answers() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel completes the handshake; nobody ever speaks
        port = listener.getsockname()[1]
        started = time.monotonic()
        text = failure(BASIC, {"host": "127.0.0.1", "port": port}, timeout=0.3)
        elapsed = time.monotonic() - started
    expected = f"failed to send email: connection to 127.0.0.1:{port} timed out after 0.3 seconds"
    assert text == expected
    # The socket waited the whole timeout (a lower bound holds on any machine; without the
    # timeout the call would never return).
    assert elapsed >= 0.3


def test_node_timeout_caps_the_smtp_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # nobody ever speaks
        port = listener.getsockname()[1]
        ctx = make_ctx(BASIC, {"host": "127.0.0.1", "port": port}, timeout=30)
        ctx.settings = NodeSettings(smtp_timeout=30, node_timeout=0.3)
        with pytest.raises(NodeError) as info:
            smtp.run(ctx)
    assert str(info.value) == (
        "failed to send email: stopped at the node time limit of 0.3 s (worker.node_timeout): "
        f"connection to 127.0.0.1:{port} timed out after 0.3 seconds"
    )


class DripServer:
    """A loopback SMTP server that answers every command, each within any per-command timeout
    (`delay` seconds), and accepts the message: slow as a whole, never silent for long."""

    def __init__(
        self, delay: float, greeting_lines: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.delay = delay
        self.tls = tls  # implicit TLS: the connection is wrapped at once
        self.greeting_lines = greeting_lines  # `220-` continuation lines first (a tarpit)
        self.greeted = 0  # of those, the lines sent before the client went away
        self.done = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.commands: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            self._converse()
        finally:
            self.done.set()

    def _converse(self) -> None:
        conn, _ = self.listener.accept()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
        with conn, conn.makefile("rb") as lines:
            for _ in range(self.greeting_lines):
                if not self._say(conn, "220-slow"):
                    return  # the client is gone
                self.greeted += 1
            self._say(conn, "220 drip ready")
            for raw in lines:
                command = raw.decode().strip().upper()
                self.commands.append(command.split(" ")[0])
                if command == "DATA":
                    self._say(conn, "354 go on")
                    for body in lines:
                        if body == b".\r\n":
                            break
                    self._say(conn, "250 queued")
                elif command == "QUIT":
                    self._say(conn, "221 bye")
                    return
                else:
                    self._say(conn, "250 ok")

    def _say(self, conn: socket.socket, line: str) -> bool:
        """Send `line` after the delay; False when the client has gone away."""
        time.sleep(self.delay)  # the slowness is the point of the server
        try:
            conn.sendall(line.encode() + b"\r\n")
        except OSError:
            return False
        return True

    def close(self) -> None:
        self.listener.close()


def test_node_timeout_bounds_the_whole_delivery_not_only_each_command() -> None:
    """Seven exchanges of 0.25 s each, each well within the 30 s smtp timeout: the node
    stops at its 0.8 s limit (before, it took 1.75 s, and a slower server could keep it past
    worker.timeout, where the supervisor kills the child as hung)."""
    server = DripServer(0.25)
    stopped_at_the_limit(server, "none", 0.8)
    assert "QUIT" not in server.commands


def stopped_at_the_limit(server: DripServer, security: str, limit: float) -> None:
    """Send through `server` with `worker.node_timeout` = `limit` (the smtp timeout 30 s): the
    node fails at the limit, saying so, no sooner; the server is closed afterwards."""
    try:
        ctx = make_ctx(BASIC, {"host": "127.0.0.1", "port": server.port, "security": security})
        ctx.settings = NodeSettings(smtp_timeout=30, node_timeout=limit)
        started = time.monotonic()
        with pytest.raises(NodeError) as info:
            smtp.run(ctx)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert str(info.value).startswith(
        f"failed to send email: stopped at the node time limit of {limit:g} s "
        "(worker.node_timeout): "
    ), info.value
    assert elapsed >= limit  # a lower bound holds on any machine


# -- parameter checks -------------------------------------------------------------------------

CREDS = {"host": "127.0.0.1", "port": 1, "username": USER, "password": PASSWORD}


@pytest.mark.parametrize(
    ("credentials", "params", "expected"),
    [
        ({"port": 25}, {}, "host is required in credentials"),
        ({"host": "  "}, BASIC, "host is required in credentials"),
        ({"host": "h", "password": PASSWORD}, {}, "username is required in credentials"),
        ({"host": "h", "username": USER}, {}, "password is required in credentials"),
        (CREDS, {**BASIC, "from": ""}, "from parameter is required"),
        (CREDS, {**BASIC, "from": 7}, "from parameter is required"),
        (CREDS, {**BASIC, "to": ""}, "at least one recipient in 'to' is required"),
        (CREDS, {**BASIC, "to": [1, None]}, "at least one recipient in 'to' is required"),
        (
            CREDS,
            {k: v for k, v in BASIC.items() if k != "subject"},
            "subject parameter is required",
        ),
        (CREDS, {**BASIC, "subject": ""}, "subject parameter is required"),
        (
            CREDS,
            {**BASIC, "from": "a@example.org, b@example.org"},
            "from parameter must be exactly one address, got 'a@example.org, b@example.org'",
        ),
        (
            CREDS,
            {**BASIC, "cc": "not an address"},
            "'cc' contains an invalid address: 'not an address'",
        ),
        (
            CREDS,
            {**BASIC, "to": "a@example.org\r\nBcc: x@example.org"},
            "'to' contains an invalid address: 'a@example.org\\r\\nBcc: x@example.org'",
        ),
        (
            CREDS,
            {**BASIC, "body_type": "markdown"},
            "body_type must be 'text' or 'html', not 'markdown'",
        ),
        (
            {**CREDS, "port": "smtp"},
            BASIC,
            "port in credentials must be a whole number from 1 to 65535, not 'smtp'",
        ),
        (
            {**CREDS, "port": 70000},
            BASIC,
            "port in credentials must be a whole number from 1 to 65535, not 70000",
        ),
        (
            {**CREDS, "security": "tls1.3"},
            BASIC,
            "security must be one of starttls, tls, ssl or none, not 'tls1.3'",
        ),
    ],
)
def test_parameter_checks(
    credentials: dict[str, Any], params: dict[str, Any], expected: str
) -> None:
    assert failure(params, credentials) == expected


def test_parameter_errors_mask_credentials() -> None:
    creds = {**CREDS, "port": PASSWORD}
    text = failure(BASIC, creds)
    assert text == "port in credentials must be a whole number from 1 to 65535, not '***'"


def test_security_defaults_follow_the_port() -> None:
    assert parse_server({"host": "h"}, {}) == Server("h", 587, "", "", "starttls", False, True)
    assert parse_server({"host": "h", "port": 465.0}, {}).security == "tls"
    assert parse_server({"host": "h", "security": "tls"}, {}).port == 465
    assert parse_server({"host": "h", "port": "25"}, {"security": "none"}) == Server(
        "h", 25, "", "", "none", True, True
    )
    # The credential's choice wins over a parameter; ignore_ssl may come from either.
    server = parse_server(
        {"host": "h", "security": "tls"}, {"security": "none", "ignore_ssl": "true"}
    )
    assert (server.security, server.verify) == ("tls", False)


@pytest.mark.parametrize(
    ("host", "security", "allowed"),
    [
        ("127.0.0.1", "starttls", True),
        ("::1", "starttls", True),
        ("LocalHost", "starttls", True),
        ("mail.example.org", "starttls", False),
        ("10.0.0.5", "starttls", False),
        ("mail.example.org", "none", True),
    ],
)
def test_plaintext_password_only_on_loopback_or_when_asked(
    host: str, security: str, allowed: bool
) -> None:
    server = Server(host, 587, USER, PASSWORD, security, True, True)
    assert plaintext_login_allowed(server) is allowed


@pytest.mark.usefixtures("trust_ca")
@pytest.mark.parametrize("security", ["none", "tls"])
def test_a_tarpit_greeting_is_cut_at_the_node_time_limit(certs: Certs, security: str) -> None:
    """One `220-` line every 0.2 s, each within any read timeout, for 8 s: the node stops at
    its 1 s limit (before, a socket timeout bounded each read and the greeting took 8 s), in
    plain text and over implicit TLS alike."""
    tls = certs.server_context if security == "tls" else None
    server = DripServer(0.2, greeting_lines=40, tls=tls)
    stopped_at_the_limit(server, security, 1.0)
    assert server.commands == []  # cut during the greeting: no command was sent
    # the client went away during the greeting, not after all of it (each line takes 0.2 s)
    assert wait_for(lambda: server.done.is_set(), 10) and server.greeted < 40, server.greeted


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
