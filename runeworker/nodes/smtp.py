"""`smtp` node: sends one email through an SMTP server (upstream
services/rune-worker/pkg/nodes/custom/smtp/, defects fixed).

Credentials (flat values): `host`, `port` (default 587, or 465 when `security` is tls),
`username` and `password` (both or neither: neither means an anonymous relay), and optional
`security` and `ignore_ssl`.

`security` (credential value, else parameter; the credential wins so that a workflow cannot
downgrade what the credential's owner asked for):
  - `starttls`: plain connect, then STARTTLS. Default for every port but 465, where STARTTLS is
    used when the server offers it; named explicitly, a server that does not offer it is an error.
  - `tls` (alias `ssl`): implicit TLS from the first byte (`smtplib.SMTP_SSL`); default for 465.
  - `none`: never encrypt.
A password is only sent over an unencrypted link when `security` is `none` or the server is on
loopback (the Go worker's rule for AUTH PLAIN). `ignore_ssl` (parameter or credential, boolean)
turns certificate and host name verification off, as for the http node. Parameters and
credential values are read by `runeworker.nodes.params`.

Parameters: `from`, `to`, `cc`, `bcc` (a string of comma-separated addresses or a list of them;
non-strings dropped), `subject`, `body`, `html` (optional HTML alternative) and `body_type`
(`text` or `html`: the body itself is HTML). Every connect and SMTP command is bounded by the
`smtp_timeout` setting, and all of them together by `worker.node_timeout` (80 % of
`worker.timeout` unless set), which also caps `smtp_timeout`. Errors read `failed to send email:
<reason>`, with credentials masked.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import math
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import errors as email_errors
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from html.parser import HTMLParser
from typing import Any

from runeworker.engine.registry import NodeContext, node, time_limit_message
from runeworker.errors import NodeError
from runeworker.nodes import params as p

DEFAULT_PORT = 587
IMPLICIT_TLS_PORT = 465
SECURITY_STARTTLS = "starttls"
SECURITY_TLS = "tls"
SECURITY_NONE = "none"
_SECURITY_ALIASES = {
    "starttls": SECURITY_STARTTLS,
    "tls": SECURITY_TLS,
    "ssl": SECURITY_TLS,
    "none": SECURITY_NONE,
}
_HOST = p.Wording(missing="host is required in credentials")
_FROM = p.Wording(missing="from parameter is required")
_SUBJECT = p.Wording(missing="subject parameter is required")
_PORT = p.Wording(invalid="port in credentials must be a whole number from 1 to 65535, not {got}")
# Tags whose text is not content, and tags that end a line, for the text/plain alternative.
_HIDDEN_TAGS = frozenset({"script", "style", "head", "title"})
_BLOCK_TAGS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})


@dataclass(frozen=True)
class Server:
    """Where and how to connect. `explicit`: the user named `security` (STARTTLS is a must)."""

    host: str
    port: int
    username: str
    password: str
    security: str
    explicit: bool
    verify: bool

    @property
    def where(self) -> str:
        """`host:port`, as error messages name the server."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Mail:
    """The validated message parameters."""

    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    subject: str
    text: str
    html: str | None

    def envelope(self) -> list[str]:
        """Envelope recipients: to + cc + bcc, each address once, in order."""
        return list(dict.fromkeys(a.addr_spec for a in (*self.to, *self.cc, *self.bcc)))


@node("smtp", required=("from", "to", "subject"), blocking=True)
def run(ctx: NodeContext) -> dict[str, Any]:
    """Send the email; the output follows upstream's smtp node plus `message_id`."""
    try:
        server = parse_server(ctx.credentials, ctx.params)
        mail = parse_mail(ctx.params)
    except NodeError as exc:
        raise NodeError(str(ctx.resolver.mask(str(exc)))) from None
    message = compose(mail)
    # worker.node_timeout (NodeSettings.node_timeout) caps the smtp timeout and bounds the
    # whole node: 0 = neither
    limit = ctx.settings.node_timeout
    timeout = min(ctx.settings.smtp_timeout, limit) if limit > 0 else ctx.settings.smtp_timeout
    started = time.monotonic()
    deadline = started + limit if limit > 0 else math.inf
    try:
        refused = deliver(server, message, mail, timeout, deadline)
    # ValueError: a read the deadline's shutdown ended mid-way may report the socket so
    except (NodeError, smtplib.SMTPException, OSError, ValueError) as exc:
        reason = describe_error(exc, server, timeout)
        if time.monotonic() >= deadline:
            if isinstance(exc, smtplib.SMTPServerDisconnected):  # the deadline's shutdown
                reason = describe_error(TimeoutError(), server, timeout)
            reason = f"{time_limit_message(limit)}: {reason}"
        # `from None`: the cause's own text is not masked and must not reach a log.
        raise NodeError(str(ctx.resolver.mask(f"failed to send email: {reason}"))) from None
    output: dict[str, Any] = {
        "success": True,
        "message": "Email sent successfully",
        "from": str(mail.sender),
        "to": [str(a) for a in mail.to],
        "cc": [str(a) for a in mail.cc],
        "bcc": [str(a) for a in mail.bcc],
        "subject": mail.subject,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "recipients": len(mail.envelope()),
        "message_id": str(message["Message-ID"]),  # a header object, which msgspec cannot encode
    }
    if refused:
        output["refused"] = refused
    return output


def parse_server(credentials: dict[str, Any], params: dict[str, Any]) -> Server:
    """Connection settings from the credential values (checks in upstream's order)."""
    host = p.text(credentials, "host", required=True, other="default", wording=_HOST).strip()
    # Secrets are kept as written: a password may be spaces.
    username = p.text(credentials, "username", other="default", keep_blank=True)
    password = p.text(credentials, "password", other="default", keep_blank=True)
    if username or password:  # anonymous relay only when both are absent
        if not username:
            raise NodeError("username is required in credentials")
        if not password:
            raise NodeError("password is required in credentials")
    named = p.text(credentials, "security", other="default") or p.text(
        params, "security", other="default"
    )
    security = _SECURITY_ALIASES.get(named.strip().lower()) if named else None
    if named and security is None:
        raise NodeError(f"security must be one of starttls, tls, ssl or none, not {named!r}")
    default_port = IMPLICIT_TLS_PORT if security == SECURITY_TLS else DEFAULT_PORT
    port = p.integer(credentials, "port", default_port, minimum=1, maximum=65535, wording=_PORT)
    if security is None:
        security = SECURITY_TLS if port == IMPLICIT_TLS_PORT else SECURITY_STARTTLS
    ignore = p.flag(params, "ignore_ssl") or p.flag(credentials, "ignore_ssl")
    return Server(host, port, username, password, security, bool(named), not ignore)


def parse_mail(params: dict[str, Any]) -> Mail:
    """Addresses, subject and bodies from the resolved parameters."""
    sender_text = p.text(params, "from", required=True, other="default", wording=_FROM)
    senders = parse_addresses(sender_text, "from")
    if len(senders) != 1:
        raise NodeError(f"from parameter must be exactly one address, got {sender_text!r}")
    to = parse_addresses(params.get("to"), "to")
    if not to:
        raise NodeError("at least one recipient in 'to' is required")
    cc = parse_addresses(params.get("cc"), "cc")
    bcc = parse_addresses(params.get("bcc"), "bcc")
    subject = p.text(
        params, "subject", required=True, other="render", keep_blank=True, wording=_SUBJECT
    )
    # A line break in a header value would be rejected by `email`; fold it to a space instead.
    subject_text = " ".join(subject.splitlines())
    text = p.text(params, "body", other="render", keep_blank=True)
    html_text: str | None = p.text(params, "html", other="render", keep_blank=True) or None
    body_type = p.text(params, "body_type", "text", other="default").strip().lower()
    if body_type not in ("text", "html"):
        raise NodeError(f"body_type must be 'text' or 'html', not {body_type!r}")
    if body_type == "html" and html_text is None:
        html_text, text = text, html_to_text(text)
    elif html_text is not None and not text:
        text = html_to_text(html_text)
    return Mail(senders[0], to, cc, bcc, subject_text, text, html_text)


def parse_addresses(value: Any, name: str) -> tuple[Address, ...]:
    """Addresses of a string (comma-separated, display names allowed) or a list of strings;
    other values and list members that are not strings are ignored, as upstream does."""
    items = [v for v in p.array({name: value}, name, lone=object) if isinstance(v, str)]
    found: list[Address] = []
    for item in items:
        if item.strip():
            found.extend(_parse_address_list(item, name))
    return tuple(found)


def _parse_address_list(text: str, name: str) -> tuple[Address, ...]:
    invalid = NodeError(f"'{name}' contains an invalid address: {text!r}")
    if "\r" in text or "\n" in text:
        raise invalid
    try:
        header = SMTP_POLICY.header_factory("to", text)
    except (IndexError, ValueError, email_errors.HeaderParseError):
        raise invalid from None
    # An empty entry ("a@b.org, ") is only an obsolete-syntax defect; anything else is garbage.
    if any(not isinstance(d, email_errors.ObsoleteHeaderDefect) for d in header.defects):
        raise invalid
    addresses: tuple[Address, ...] = header.addresses
    return addresses


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML document for the text/plain alternative."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS and self._skip:
            self._skip -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body: tags dropped, blank lines collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def compose(mail: Mail) -> EmailMessage:
    """The MIME message (no Bcc header); non-ASCII headers are RFC 2047 encoded on output."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = mail.sender
    message["To"] = mail.to
    if mail.cc:
        message["Cc"] = mail.cc
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    # The sender's domain, not socket.getfqdn(): no DNS lookup on every message.
    message["Message-ID"] = make_msgid(domain=mail.sender.domain or "runeworker.invalid")
    message.set_content(mail.text)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message


def deliver(
    server: Server, message: EmailMessage, mail: Mail, timeout: float, deadline: float = math.inf
) -> dict[str, str]:
    """Connect, secure, log in and send; returns the recipients the server refused (if some
    were accepted: a refusal of all of them raises). `timeout` bounds each network operation,
    `deadline` (time.monotonic) all of them."""
    smtp = _connect(server, min(timeout, max(deadline - time.monotonic(), 0.001)), deadline)
    try:
        _secure_and_login(smtp, server)
        refused = smtp.send_message(
            message, from_addr=mail.sender.addr_spec, to_addrs=mail.envelope()
        )
    except BaseException:
        smtp.close()
        raise
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()  # the message was accepted already; a failed goodbye changes nothing
    return {addr: _reply(code, text) for addr, (code, text) in refused.items()}


class _Bounded(smtplib.SMTP):
    """An SMTP client that ends at `deadline` (time.monotonic) whatever the server does: at the
    deadline a timer shuts the socket down, which ends a read or write in progress and fails
    every later one. A socket timeout alone bounds each read, not a reply: a server sending a
    `220-` continuation line every few seconds (a "tarpit") kept the node as long as it liked."""

    def __init__(self, *args: Any, deadline: float = math.inf, **kwargs: Any) -> None:
        self.deadline = deadline
        self._timer: threading.Timer | None = None
        try:
            super().__init__(*args, **kwargs)  # connects and reads the greeting
        except BaseException:
            self._disarm()
            raise

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        if self.deadline != math.inf and self._timer is None:
            self._timer = threading.Timer(max(self.deadline - time.monotonic(), 0.0), self._cut)
            self._timer.daemon = True
            self._timer.start()
        return sock

    def _cut(self) -> None:
        sock = self.sock  # the one in use: STARTTLS replaces it
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def close(self) -> None:
        self._disarm()
        super().close()


class _BoundedSSL(_Bounded, smtplib.SMTP_SSL):
    """`_Bounded` over implicit TLS."""


def _connect(server: Server, timeout: float, deadline: float) -> _Bounded:
    # `timeout` becomes the socket timeout: it bounds the connect and every later command.
    if server.security == SECURITY_TLS:
        return _BoundedSSL(
            server.host,
            server.port,
            _local_hostname(),
            timeout=timeout,
            context=_tls_context(server.verify),
            deadline=deadline,
        )
    return _Bounded(server.host, server.port, _local_hostname(), timeout=timeout, deadline=deadline)


def _secure_and_login(smtp: smtplib.SMTP, server: Server) -> None:
    encrypted = server.security == SECURITY_TLS
    if server.security == SECURITY_STARTTLS:
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=_tls_context(server.verify))
            smtp.ehlo()
            encrypted = True
        elif server.explicit:
            raise NodeError(f"server {server.where} does not offer STARTTLS")
    if not server.username:
        return
    if not encrypted and not plaintext_login_allowed(server):
        raise NodeError(
            f"refusing to send the password unencrypted to {server.where} (no STARTTLS offered;"
            " set security to 'none' to allow it)"
        )
    smtp.login(server.username, server.password)


def plaintext_login_allowed(server: Server) -> bool:
    """A password may cross an unencrypted link only when asked to, or to this very machine."""
    if server.security == SECURITY_NONE or server.host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(server.host.strip("[]")).is_loopback
    except ValueError:
        return False


def _tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@functools.lru_cache(maxsize=1)
def _local_hostname() -> str:
    # smtplib would call socket.getfqdn() (a DNS lookup) on every connection.
    return socket.getfqdn()


def describe_error(exc: BaseException, server: Server, timeout: float) -> str:
    """One plain sentence for a delivery failure (without the `failed to send email` prefix)."""
    where = server.where
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return f"connection to {where} timed out after {timeout:g} seconds"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"authentication refused by {where}: {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"sender {exc.sender} refused by {where}: {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refusals = "; ".join(f"{a}: {_reply(c, t)}" for a, (c, t) in exc.recipients.items())
        return f"all recipients refused by {where}: {refusals}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{where} answered {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"{where} closed the connection unexpectedly"
    if isinstance(exc, smtplib.SMTPException):  # e.g. AUTH or SMTPUTF8 not offered
        return f"server {where}: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate of {where} not accepted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {where} failed: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {server.host}: {exc.strerror}"
    if isinstance(exc, OSError):
        return f"connection to {where} failed: {exc.strerror or exc}"
    return str(exc) if isinstance(exc, NodeError) else f"{where}: {exc}"


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(message.split())}"
