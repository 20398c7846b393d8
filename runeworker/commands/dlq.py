"""`runeworker dlq list | show ID | replay ID|--all [--to QUEUE]`: the dead-letter queue.

A worker dead-letters the raw bytes of a message it cannot process, through the default
exchange to `broker.dead_letter_queue`, with the headers `x-runeworker-reason`,
`x-runeworker-queue` (where it was consumed), `x-runeworker-redelivered` and
`x-runeworker-failed-at`.

Browsing never consumes: messages are fetched with basic.get and no ack on a channel of their
own, and go back to the queue, in their places, when that channel closes. A message is named by
its position in the queue (`#3`, as `list` prints it; positions change as messages come and go)
or by its id: 12 hex digits of a hash of its body and headers, stable for as long as it sits in
the queue (two identical messages dead-lettered with the same reason in the same second share an
id; the first one is taken).

`replay` republishes the raw body, without the dead-letter headers but marked
`x-runeworker-replayed` (so that even a single-branch execution's step consults the state store,
see `Executor.step`), to its original queue
(or `--to QUEUE`) through the default exchange, and acks the dead-letter copy in the same AMQP
transaction: a message is either back on its queue and gone from the dead-letter queue, or
untouched. `replay --all` reads the queue twice, one body in memory at a time: once to check
every target queue before anything changes, then to replay. A replayed message is processed
like a new delivery, against the state the store still holds: when its execution was
identified, the rejection recorded a `failed` outcome for it, and for `redis.key_ttl` a replay
runs the node again and then publishes that same failed completion again. Replay therefore
helps messages whose execution could not be identified or whose state has expired; resuming a
failed execution would need its state reset first.

A message another client holds unacked (a `dlq` command running in another terminal) is
invisible to basic.get: `list` and `replay --all` say on stderr how many of the messages they
counted they could not fetch (a message held before they counted is not even counted).

`show` masks every credential value of the workflow definition wherever it appears in the body
and headers, and the password of every URL; a body that is not JSON only gets its
secret-looking keys and URL passwords masked (best effort).
Exit codes: 0 done, 1 no such message, 2 configuration, usage or broker error.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import pika
import pika.exceptions

from runeworker.adapters.amqp import (
    AMQP_ERRORS,
    COMMAND_HANDSHAKE_TIMEOUT,
    REPLAYED_HEADER,
    Endpoint,
    queue_arguments,
)
from runeworker.config import Config, load_config
from runeworker.engine.rejection import identify
from runeworker.engine.resolver import MASK, Resolver
from runeworker.engine.workflow import CREDENTIAL_LABELS, embedded_credentials
from runeworker.errors import BrokerError, ConfigError
from runeworker.masking import mask_url_passwords
from runeworker.printable import json_text, multiline, one_line

EXIT_OK, EXIT_NOT_FOUND, EXIT_ERROR = 0, 1, 2
HEADER_PREFIX = "x-runeworker-"
_COMMIT_EVERY = 100  # replays per transaction: each message stays atomic, memory stays bounded
_REASON_WIDTH = 100
# "key": "string value" with a short key (bounded: linear on any body)
_KEY_VALUE = re.compile(r'("([^"\\]{1,64})"\s*:\s*)"(?:[^"\\]|\\.)*"', re.DOTALL)
_SECRET_WORDS = ("pass", "secret", "token", "key", "value", "auth")


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter queue, fetched without being consumed."""

    index: int  # 1-based position in the queue when it was browsed
    tag: int  # delivery tag on the browsing channel
    body: bytes
    properties: pika.BasicProperties

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    def header(self, name: str) -> str:
        value = self.headers.get(HEADER_PREFIX + name)
        return "-" if value is None else _text(value)

    @property
    def id(self) -> str:
        digest = hashlib.blake2b(self.body, digest_size=6)
        digest.update(json.dumps(self.headers, sort_keys=True, default=_text).encode())
        return digest.hexdigest()

    @property
    def execution_id(self) -> str:
        ids = identify(self.body)
        return ids.execution_id if ids is not None else "-"


def dlq(args: argparse.Namespace, overrides: Mapping[str, Any]) -> int:
    """`cli` entry: `args.dlq_command` is list (`args.limit`), show (`args.id`) or replay
    (`args.id` or `args.all`, optional `args.to`)."""
    try:
        cfg = load_config(getattr(args, "config", None), overrides=overrides)
    except ConfigError as exc:
        for problem in str(exc).splitlines():
            print(f"config error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    command = args.dlq_command
    try:
        with DeadLetterQueue(cfg) as queue:
            if command == "list":
                return queue.list(getattr(args, "limit", 1000), sys.stdout)
            if command == "show":
                return queue.show(args.id, sys.stdout)
            if command == "replay":
                return queue.replay(args.id, bool(args.all), args.to, sys.stdout)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"error: unknown dlq command {command!r}", file=sys.stderr)
    return EXIT_ERROR


class DeadLetterQueue:
    """A connection to the broker for browsing and replaying `broker.dead_letter_queue`."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.name = cfg.broker.dead_letter_queue
        self.endpoint = Endpoint.of(cfg.broker, handshake_timeout=COMMAND_HANDSHAKE_TIMEOUT)
        self._conn: Any = None

    def __enter__(self) -> DeadLetterQueue:
        self._conn = self.endpoint.connect("runeworker dlq")
        return self

    def __exit__(self, *_exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(*AMQP_ERRORS):
                conn.close()

    # -- commands ---------------------------------------------------------------------------

    def list(self, limit: int, out: TextIO) -> int:
        """One line per message, oldest first; the queue is left as it was."""
        with self._browsing() as (_ch, total, letters):
            # one line per message as it is fetched: a body is dropped once its line is made,
            # so a queue of large messages (oversized ones are dead-lettered whole) costs
            # the memory of one message, not of `limit` of them
            shown = [_list_line(d) for d in itertools.islice(letters, limit)]
            unseen = min(total, limit) - len(shown)
            if not shown and not unseen:
                out.write(f"{self.name} is empty\n")
                return EXIT_OK
            if shown:
                out.write(f"{'#':>4}  {'ID':12}  {'FAILED AT':20}  {'QUEUE':20}  ")
                out.write(f"{'EXECUTION':36}  {'BYTES':>9}  REASON\n")
                out.writelines(shown)
            if unseen:
                self._note_unseen(unseen, total, "not listed")
            elif total > len(shown):
                out.write(f"(first {len(shown)} of {total} messages; see --limit)\n")
        return EXIT_OK

    def show(self, ref: str, out: TextIO) -> int:
        """Headers and body (pretty JSON, credentials masked) of one message."""
        with self._browsing() as (_ch, total, letters):
            found = _find(letters, ref)
            if found is None:
                print(f"error: no message {ref} in {self.name}", file=sys.stderr)
                return EXIT_NOT_FOUND
            body, secrets = _masked_body(found.body)
            headers = Resolver({}, credentials=secrets).mask(
                {k: _jsonable(v) for k, v in found.headers.items()}
            )
            out.write(f"id: {found.id} (#{found.index} of {total} in {self.name})\n")
            out.write(f"execution: {one_line(found.execution_id)}\nbytes: {len(found.body)}\n")
            shown = mask_url_passwords(json.dumps(headers, indent=2, sort_keys=True))
            out.write(f"headers: {shown}\n")
            out.write(f"body:\n{body}\n")
        return EXIT_OK

    def replay(self, ref: str | None, every: bool, to: str | None, out: TextIO) -> int:
        """Move one message (`ref`) or all of them back to their queue, atomically each."""
        if every == (ref is not None):
            print("error: give either a message id (or #index) or --all", file=sys.stderr)
            return EXIT_ERROR
        if to == self.name:
            print(f"error: --to names the dead-letter queue {self.name} itself", file=sys.stderr)
            return EXIT_ERROR
        if to is not None and not to.strip():  # `--to "$QUEUE"` with QUEUE unset
            print("error: --to needs a queue name (got an empty one)", file=sys.stderr)
            return EXIT_ERROR
        if every:
            return self._replay_all(to, out)
        with self._browsing() as (ch, _total, letters):
            found = _find(letters, ref or "")
            if found is None:
                print(f"error: no message {ref} in {self.name}", file=sys.stderr)
                return EXIT_NOT_FOUND
            queue = to or found.header("queue")
            problem = self._check_targets({queue})
            if problem:
                print(f"error: {problem}", file=sys.stderr)
                return EXIT_ERROR
            with self.endpoint.errors(f"cannot replay from {self.name}"):
                ch.tx_select()
                _republish(ch, found, queue)
                ch.tx_commit()
            out.write(_replayed_line(found, queue))
        return EXIT_OK

    def _replay_all(self, to: str | None, out: TextIO) -> int:
        """Every message back to its queue, one body in memory at a time. A first pass reads
        the messages to check every target queue before anything changes (their bodies are
        dropped as it goes) and hands them back in place; the second replays as many as the
        first saw (a snapshot: a copy dead-lettered again meanwhile is not replayed twice),
        `_COMMIT_EVERY` to a transaction, checking the target of a message the first pass did
        not see (another client put it back meanwhile)."""
        targets: set[str] = set()
        with self._browsing() as (_ch, total, letters):
            seen = 0
            for d in letters:
                seen += 1
                targets.add(to or d.header("queue"))
            if seen < total:
                self._note_unseen(total - seen, total, "not replayed")
            if not seen:
                if not total:
                    out.write(f"{self.name} is empty: nothing to replay\n")
                return EXIT_OK
            problem = self._check_targets(targets)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_ERROR
        replaying = self.endpoint.errors(f"cannot replay from {self.name}")
        with self._browsing() as (ch, _total, letters), replaying:
            ch.tx_select()
            done: list[str] = []  # the lines of the transaction under way
            for n, d in enumerate(itertools.islice(letters, seen), 1):
                queue = to or d.header("queue")
                if queue not in targets:
                    problem = self._check_targets({queue})
                    if problem:
                        break
                    targets.add(queue)
                _republish(ch, d, queue)
                done.append(_replayed_line(d, queue))
                if n % _COMMIT_EVERY == 0:
                    ch.tx_commit()
                    out.write("".join(done))
                    done = []
            ch.tx_commit()
            out.write("".join(done))
        if problem:
            print(f"error: {problem}; the messages after it were not replayed", file=sys.stderr)
            return EXIT_ERROR
        return EXIT_OK

    # -- helpers ----------------------------------------------------------------------------

    def _note_unseen(self, unseen: int, total: int, fate: str) -> None:
        """Say that `unseen` of the `total` messages counted could not be fetched: a message
        another channel holds unacked (a `dlq list`, `show` or `replay` still running) is
        invisible to basic.get."""
        print(
            f"note: {unseen} of the {total} messages in {self.name} could not be fetched, "
            f"{fate}: another client holds them (a dlq list, show or replay still running?) "
            "or took them meanwhile",
            file=sys.stderr,
        )

    @contextlib.contextmanager
    def _browsing(self) -> Iterator[tuple[Any, int, Iterator[DeadLetter]]]:
        """(channel, messages ready, an iterator over at most that many messages, fetched
        unacked as it is advanced). Closing the channel at the end hands every message that
        was not acked back to the queue, in its place."""
        with self.endpoint.errors(f"cannot read {self.name}"):
            ch = self._conn.channel()
            # declared as the worker declares it: a missing queue is an empty one
            arguments = queue_arguments(self.cfg.broker.queue_type)  # as the workers declare it
            declared = ch.queue_declare(self.name, durable=True, arguments=arguments)
            total = int(declared.method.message_count)

        def fetch() -> Iterator[DeadLetter]:
            for index in range(1, total + 1):
                with self.endpoint.errors(f"cannot read {self.name}"):
                    method, props, body = ch.basic_get(self.name, auto_ack=False)
                if method is None:
                    return
                yield DeadLetter(index, method.delivery_tag, body, props)

        try:
            yield ch, total, fetch()
        finally:
            if ch.is_open:
                with contextlib.suppress(*AMQP_ERRORS):
                    ch.close()

    def _check_targets(self, queues: set[str]) -> str:
        """'' when every queue exists, else a sentence naming the problem."""
        if "-" in queues:
            return "a message has no x-runeworker-queue header: give --to QUEUE"
        for queue in sorted(queues):
            if queue == self.name:
                return f"a message names the dead-letter queue {queue} as its origin; use --to"
            with self.endpoint.errors("cannot check the target queues"):
                ch = self._conn.channel()
                try:
                    ch.queue_declare(queue, passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    return f"queue {one_line(queue)} does not exist"
                ch.close()
        return ""


def _list_line(d: DeadLetter) -> str:
    """The line of `d`: its fields come from the message, so their control characters are
    escaped (an execution id may hold a newline or an ESC sequence)."""
    reason = one_line(" ".join(d.header("reason").split()))
    if len(reason) > _REASON_WIDTH:
        reason = reason[: _REASON_WIDTH - 3] + "..."
    failed_at, queue = one_line(d.header("failed-at")), one_line(d.header("queue"))
    return (
        f"{d.index:>4}  {d.id:12}  {failed_at:20}  {queue:20}  "
        f"{one_line(d.execution_id):36}  {len(d.body):>9}  {reason}\n"
    )


def _replayed_line(d: DeadLetter, queue: str) -> str:
    return f"replayed {d.id} to {one_line(queue)} (execution {one_line(d.execution_id)})\n"


def _republish(ch: Any, d: DeadLetter, queue: str) -> None:
    headers = {k: v for k, v in d.headers.items() if not k.startswith(HEADER_PREFIX)}
    headers[REPLAYED_HEADER] = True  # its execution may have its completion already
    props = pika.BasicProperties(
        content_type=d.properties.content_type,
        delivery_mode=2,
        headers=headers,
    )
    ch.basic_publish("", queue, d.body, props)
    ch.basic_ack(d.tag)


def _find(letters: Iterator[DeadLetter], ref: str) -> DeadLetter | None:
    """The message named `ref`: `#3` or `3` (position), or its id; fetches no further."""
    position = ref.removeprefix("#")
    if position.isdigit() and len(position) < 12:
        return next((d for d in letters if d.index == int(position)), None)
    return next((d for d in letters if d.id == ref.lower()), None)


def _masked_body(body: bytes) -> tuple[str, dict[str, Any]]:
    """(printable body, the credential values found in it)."""
    try:
        doc = _json_of(body)
    except (ValueError, RecursionError):
        text = mask_url_passwords(body.decode("utf-8", errors="backslashreplace"))
        return multiline(_KEY_VALUE.sub(_mask_secret_key, text)), {}
    secrets: dict[str, Any] = {}
    definition = doc.get("workflow_definition") if isinstance(doc, dict) else None
    encoded_twice = False
    if isinstance(definition, str):  # encoded twice: a producer's bug, the kind that gets here
        try:
            definition, encoded_twice = json.loads(definition), True
        except (ValueError, RecursionError):
            definition = None
    nodes = definition.get("nodes") if isinstance(definition, dict) else None
    embedded: list[dict[str, Any]] = []
    for i, n in enumerate(nodes if isinstance(nodes, list) else []):
        creds = n.get("credentials") if isinstance(n, dict) else None
        if isinstance(creds, dict) and isinstance(creds.get("values"), dict):
            secrets.update({f"{i}.{k}": v for k, v in creds["values"].items()})
            creds["values"] = {k: MASK for k in creds["values"]}
        elif creds is not None:  # a shape the worker refuses: all of it but its labels
            secrets[f"{i}.credentials"] = (
                {k: v for k, v in creds.items() if k not in CREDENTIAL_LABELS}
                if isinstance(creds, dict)
                else creds
            )
        if isinstance(n, dict):
            embedded += embedded_credentials(n.get("parameters"))
    for j, block in enumerate(embedded):  # the caller masks the headers with these too
        secrets.update({f"embedded{j}.{k}": v for k, v in block.items()})
    resolver = Resolver({}, credentials=secrets, secrets=embedded)
    masked = resolver.mask(doc) if secrets else doc
    if encoded_twice and secrets:  # shown as the text it is, its secrets masked as values
        masked["workflow_definition"] = json.dumps(resolver.mask(definition), ensure_ascii=False)
    # a URL's password anywhere (the context, a producer's own field) is a secret as well
    text = mask_url_passwords(json.dumps(masked, indent=2, ensure_ascii=False))
    try:  # the bytes that were not UTF-8 shown as \xNN, as in a body that is not JSON
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # a lone surrogate escape (Python's json reads "\ud83d" alone; no encoder writes it)
        # is shown escaped, as it came
        data = text.encode("utf-8", "backslashreplace")
    return json_text(data.decode("utf-8", "backslashreplace")), secrets


def _json_of(body: bytes) -> Any:
    """The JSON document of `body`; bytes that are not UTF-8 (the worker refuses such a message,
    and its credentials are still there to mask) are kept as surrogate escapes."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        return json.loads(body.decode("utf-8", "surrogateescape"))


def _mask_secret_key(m: re.Match[str]) -> str:
    key = m.group(2).lower()
    return f'{m.group(1)}"{MASK}"' if any(w in key for w in _SECRET_WORDS) else m.group(0)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return _text(bytes(value))
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
