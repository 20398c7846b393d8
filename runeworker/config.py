"""The one typed, strict configuration of runeworker.

Layers, later ones win: the defaults below < one TOML file < the environment < command-line
overrides. Every layer is checked key by key, so a wrong key or value is an error that names the
key and where it came from; nothing falls back to a default silently (the Go worker replaces an
invalid integer by its default: `getEnvAsInt` in
services/rune-worker/pkg/platform/config/config.go).
No `.env` file is read: the Go worker let one override the real environment, which made the
environment a systemd unit sets impossible to trust.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta
from msgspec import inspect as mi

from runeworker.engine.registry import DENY_NETWORKS as DENY_NETWORKS  # re-exported
from runeworker.engine.registry import NodeSettings
from runeworker.errors import ConfigError
from runeworker.integrations.spec import BASE_URLS
from runeworker.masking import mask_url as mask_url  # re-exported: callers import it here

NonEmpty = Annotated[str, Meta(min_length=1)]
AtLeast0 = Annotated[int, Meta(ge=0)]
AtLeast1 = Annotated[int, Meta(ge=1)]
Seconds = Annotated[float, Meta(ge=0)]
PositiveSeconds = Annotated[float, Meta(gt=0)]
_NODE = NodeSettings()  # the defaults of every node setting (see its docstring)
# children of one supervisor: the slots of its liveness board (supervisor/children.py)
MAX_PROCESSES = 256


class BrokerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """RabbitMQ: where to connect, what to consume, how to retry and dead-letter."""

    url: NonEmpty = "amqp://guest:guest@127.0.0.1:5672/"
    # the nodes of a cluster, tried in order (pika's list of connection parameters); set
    # `urls` or `url`, not both
    urls: list[str] = msgspec.field(default_factory=list)
    # type of the execution and resume queues; must be what Rune's API declares (classic)
    queue_type: Literal["classic", "quorum"] = "classic"
    queue: NonEmpty = "workflow.execution"
    resume_queue: NonEmpty = "workflow.resume"
    exchange: NonEmpty = "workflows"
    # AMQP carries both in 16 bits (basic.qos prefetch-count, connection.tune heartbeat)
    prefetch: Annotated[int, Meta(ge=1, le=65535)] = 10
    heartbeat: Annotated[int, Meta(ge=0, le=65535)] = 60
    connection_attempts: AtLeast1 = 3
    retry_delay: Seconds = 1.0
    retry_delay_max: Seconds = 30.0
    batch_max: AtLeast1 = 32
    dead_letter_queue: NonEmpty = "runeworker.dead-letter"
    max_deliveries: AtLeast1 = 3
    # RabbitMQ's consumer_timeout as the broker runs it (0 = it has none): a delivery left
    # unacknowledged that long makes the broker close the channel. Deliveries that waited in a
    # child long enough to reach it before their step ends are handed back first.
    consumer_timeout: Seconds = 1800.0
    max_message_bytes: AtLeast0 = 16 * 1024 * 1024  # larger deliveries are dead-lettered; 0 = any


class RedisConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Redis, the shared state store."""

    url: NonEmpty = "redis://127.0.0.1:6379/0"
    # Redis Sentinel: "host:port" (or "redis://[user:password@]host:port" when the sentinels
    # need their own credentials) of each sentinel, and the name of the monitored master;
    # `url` then gives the master's credentials, database and TLS, not its address
    sentinels: list[str] = msgspec.field(default_factory=list)
    service_name: str = ""
    # Redis Cluster: `url` is the first node to ask for the cluster's layout
    cluster: bool = False
    key_prefix: str = ""
    # Redis refuses an expire time whose milliseconds overflow; 2^31-1 s is 68 years
    key_ttl: Annotated[int, Meta(ge=60, le=2**31 - 1)] = 86400
    socket_timeout: PositiveSeconds = 5.0


class WorkerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The consumer child processes."""

    processes: Annotated[int, Meta(ge=1, le=MAX_PROCESSES)] = 2
    max_messages: AtLeast0 = 0
    max_messages_jitter: Annotated[float, Meta(ge=0, le=1)] = 0.1
    max_memory_mb: AtLeast0 = 0
    timeout: Annotated[float, Meta(ge=1)] = 60.0
    graceful_timeout: Seconds = 30.0
    max_steps: AtLeast1 = 10000
    # a node's time limit (blocking nodes, and those spending CPU over many values), <
    # worker.timeout; 0 = AUTO_TOTAL_SHARE of worker.timeout
    node_timeout: Seconds = 0.0


class SupervisorConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The supervisor: restart backoff and the crash loop guard."""

    restart_backoff: Seconds = 1.0
    restart_backoff_max: Seconds = 30.0
    crash_limit: AtLeast1 = 10
    crash_window: PositiveSeconds = 60.0
    pid_file: str = ""


class MetricsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The Prometheus endpoint and its multiprocess directory."""

    listen: str = "127.0.0.1:9464"
    directory: str = ""


class NodesConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Operator limits of the built-in nodes (defaults: `NodeSettings`, their one home)."""

    http_deny_networks: list[str] = msgspec.field(
        default_factory=lambda: list(_NODE.http_deny_networks)
    )
    http_max_response_bytes: AtLeast1 = _NODE.http_max_response_bytes
    http_default_timeout: PositiveSeconds = _NODE.http_default_timeout
    smtp_timeout: PositiveSeconds = _NODE.smtp_timeout


class IntegrationsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Where the integration nodes reach their services (a test or a proxy may stand in), and how
    long they honour a 429/503 `Retry-After`."""

    gmail_base_url: NonEmpty = BASE_URLS["gmail"]
    sheets_base_url: NonEmpty = BASE_URLS["sheets"]
    drive_base_url: NonEmpty = BASE_URLS["drive"]
    dropbox_base_url: NonEmpty = BASE_URLS["dropbox"]
    outlook_base_url: NonEmpty = BASE_URLS["outlook"]
    slack_base_url: NonEmpty = BASE_URLS["slack"]
    telegram_base_url: NonEmpty = BASE_URLS["telegram"]
    jira_base_url: NonEmpty = BASE_URLS["jira"]
    retry_after_max: Seconds = NodeSettings.integrations_retry_after_max
    retry_after_attempts: AtLeast0 = NodeSettings.integrations_retry_after_attempts


class AgentConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The agent node: where the LLM APIs are (proxies, gateways, local servers) and its limits.
    A base URL is given like the SDK's (`openai_base_url` includes `/v1`); "" = the public API."""

    gemini_base_url: str = ""
    openai_base_url: str = ""
    anthropic_base_url: str = ""
    max_rounds: AtLeast1 = 10  # tool-calling rounds of one run
    request_timeout: PositiveSeconds = 30.0  # one LLM request; an MCP connect, an MCP request
    # the whole run, < worker.timeout; 0 = AUTO_TOTAL_SHARE of worker.timeout
    total_timeout: Seconds = 0.0
    max_retries: AtLeast0 = 2  # of one LLM request (the SDK's retries: 429, 5xx, connection)
    anthropic_max_tokens: AtLeast1 = 4096  # the messages API requires a cap on the reply


class LoggingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Log level and line format."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["json", "text"] = "json"


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The effective configuration; build it with `load_config`."""

    broker: BrokerConfig = msgspec.field(default_factory=BrokerConfig)
    redis: RedisConfig = msgspec.field(default_factory=RedisConfig)
    worker: WorkerConfig = msgspec.field(default_factory=WorkerConfig)
    supervisor: SupervisorConfig = msgspec.field(default_factory=SupervisorConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    nodes: NodesConfig = msgspec.field(default_factory=NodesConfig)
    integrations: IntegrationsConfig = msgspec.field(default_factory=IntegrationsConfig)
    agent: AgentConfig = msgspec.field(default_factory=AgentConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)


# Dotted key ("broker.prefetch") -> annotated field type, the single source of valid keys.
_FIELDS: dict[str, Any] = {
    f"{section.name}.{f.name}": f.type
    for section in msgspec.structs.fields(Config)
    for f in msgspec.structs.fields(section.type)
}
_SECTIONS = frozenset(key.partition(".")[0] for key in _FIELDS)

# The Go worker's variables keep working (services/rune-worker/pkg/platform/config/config.go).
GO_ENV_VARS: dict[str, str] = {
    "RABBITMQ_URL": "broker.url",
    "REDIS_URL": "redis.url",
    "WORKFLOW_QUEUE_NAME": "broker.queue",
    "WORKFLOW_PREFETCH": "broker.prefetch",
    "WORKFLOW_CONCURRENCY": "worker.processes",
}
ENV_PREFIX = "RUNEWORKER_"
CONFIG_ENV_VAR = "RUNEWORKER_CONFIG"
COMMAND_LINE = "command line"

_Layer = dict[str, tuple[Any, str]]  # dotted key -> (typed value, source that set it)


def masked(cfg: Config) -> dict[str, Any]:
    """The effective config as plain nested dicts, every URL password (also in lists such as
    `broker.urls` and `redis.sentinels`) replaced by `***`."""
    tree: dict[str, dict[str, Any]] = msgspec.to_builtins(cfg)
    return {
        section: {k: _masked_value(v) for k, v in table.items()} for section, table in tree.items()
    }


# The share of worker.timeout a node (worker.node_timeout) and an agent run
# (agent.total_timeout) get by default: the supervisor kills a child whose node runs past
# worker.timeout; the rest leaves the node time to fail and report it.
AUTO_TOTAL_SHARE = 0.8


def _masked_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, list):
        return [_masked_value(item) for item in value]
    return value


def to_node_settings(cfg: Config) -> NodeSettings:
    """The part of the config the nodes see: what `serve`'s children and `run` both use."""
    fields = msgspec.to_builtins(cfg.nodes)
    fields["http_deny_networks"] = tuple(cfg.nodes.http_deny_networks)
    integrations = msgspec.to_builtins(cfg.integrations)
    urls = {k.removesuffix("_base_url"): v for k, v in integrations.items() if k.endswith("_url")}
    urls = {service: url for service, url in urls.items() if url != BASE_URLS[service]}
    retry = {f"integrations_{k}": v for k, v in integrations.items() if k.startswith("retry")}
    agent = {f"agent_{k}": v for k, v in msgspec.to_builtins(cfg.agent).items()}
    agent["agent_total_timeout"] = cfg.agent.total_timeout or AUTO_TOTAL_SHARE * cfg.worker.timeout
    return NodeSettings(
        **fields,
        **retry,
        **agent,
        integrations_base_urls=urls,
        node_timeout=cfg.worker.node_timeout or AUTO_TOTAL_SHARE * cfg.worker.timeout,
    )


def _url_check(*schemes: str) -> Callable[[Any], str | None]:
    def check(url: Any) -> str | None:
        if str(url).partition("://")[0].lower() not in schemes:
            wanted = " or ".join(f"{s}://" for s in schemes)
            return f"expected a URL starting with {wanted}, got {mask_url(str(url))!r}"
        try:  # the clients would fail later, quoting the part of the password they misread
            urlsplit(str(url)).port  # noqa: B018
        except ValueError:
            return f"cannot parse {mask_url(str(url))!r}: {_port_problem(str(url))}"
        return None

    return check


def _port_problem(url: str) -> str:
    """Why a URL's port cannot be read: a password holding / ? # (which ends the address part
    early, so that the rest of the password reads as the port), or the port itself."""
    netloc = urlsplit(url).netloc
    if "@" not in netloc and "@" in url.partition("://")[2]:
        return "percent-encode / ? # in the password"
    return "the port is not a number from 0 to 65535"


def _url_check_or_empty(*schemes: str) -> Callable[[Any], str | None]:
    check = _url_check(*schemes)
    return lambda url: None if url == "" else check(url)


def _each(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """`check` applied to every item of a list; the first problem, naming the item's index."""

    def check_all(items: Any) -> str | None:
        for i, item in enumerate(items):
            if problem := check(item):
                return f"[{i}]: {problem}"
        return None

    return check_all


def _check_sentinel(entry: Any) -> str | None:
    """ "host:port", or a redis:// URL naming the sentinel and its own credentials."""
    text = str(entry)
    if "://" in text:
        if problem := _url_check("redis", "rediss")(text):
            return problem
        host, port = urlsplit(text).hostname, urlsplit(text).port
    else:
        host, _, digits = text.rpartition(":")
        port = int(digits) if digits.isdigit() else None
    if not host or port is None or not 0 < port <= 65535:
        return f"expected host:port or redis://[user:password@]host:port, got {mask_url(text)!r}"
    return None


def _check_listen(listen: Any) -> str | None:
    """The forms the metrics server binds (`runeworker.metrics.parse_listen`, which cannot be
    imported here; tests/unit/test_metrics.py holds the two to the same answers): host:port,
    [v6-host]:port or :port; an IPv6 address without brackets is refused."""
    text = str(listen)
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1].replace(":", "")  # the colons of an IPv6 address, in brackets
    if text == "" or (
        colon and port.isdigit() and int(port) <= 65535 and not any(c in host for c in ":[]")
    ):
        return None
    return f'expected host:port, [IPv6 address]:port or :port (or "" to disable), got {listen!r}'


def _check_networks(networks: Any) -> str | None:
    for net in networks:
        try:
            ipaddress.ip_network(net)
        except ValueError:
            return f"expected IP networks like '169.254.0.0/16', got {net!r}"
    return None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "broker.url": _url_check("amqp", "amqps"),
    "broker.urls": _each(_url_check("amqp", "amqps")),
    "redis.url": _url_check("redis", "rediss", "unix"),
    "redis.sentinels": _each(_check_sentinel),
    "metrics.listen": _check_listen,
    "nodes.http_deny_networks": _check_networks,
    "agent.gemini_base_url": _url_check_or_empty("http", "https"),
    "agent.openai_base_url": _url_check_or_empty("http", "https"),
    "agent.anthropic_base_url": _url_check_or_empty("http", "https"),
}
_CHECKS |= {
    key: _url_check("http", "https")
    for key in _FIELDS
    if key.startswith("integrations.") and key.endswith("_base_url")
}


def _convert(key: str, value: Any) -> tuple[Any, str | None]:
    """(typed value, None), or (None, msgspec's complaint naming the key)."""
    try:
        return msgspec.convert(value, _FIELDS[key], strict=True), None
    except msgspec.ValidationError as exc:
        # "Expected `str`, got `int` - at `$[1]`" -> "key[1]: Expected `str`, got `int`"
        msg, _, where = str(exc).partition(" - at `$")
        return None, f"{key}{where.rstrip('`')}: {msg}"


def _semantic(key: str, typed: Any) -> str | None:
    check = _CHECKS.get(key)
    return check(typed) if check else None


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, _FIELDS, n=1)
    return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _close_section(name: str) -> str | None:
    """The section `name` misspells (`workers`, `metric`), if any: close enough that no other
    tool's name is taken for one (`RUNEWORKER_CLUSTER_...` is not a typo of a section)."""
    close = difflib.get_close_matches(name, sorted(_SECTIONS), n=1, cutoff=_SECTION_CUTOFF)
    return close[0] if close else None


_SECTION_CUTOFF = 0.8


def _unknown_section(name: str) -> str:
    close = _close_section(name)
    return f"unknown section {name!r}" + (f" (did you mean {close!r}?)" if close else "")


def _outside_sections(name: str) -> str:
    """A key written before any [section] header: say so, and which sections hold that name."""
    owners = sorted(key for key in _FIELDS if key.partition(".")[2] == name)
    hint = f" (did you mean {' or '.join(repr(k) for k in owners)}?)" if owners else ""
    return f"key {name!r} outside any [section]: every key belongs to one{hint}"


def config_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> str | None:
    """The config file to read: `path`, else $RUNEWORKER_CONFIG, else none (defaults only)."""
    if path is not None:
        return os.fspath(path)
    return env.get(CONFIG_ENV_VAR) or None


def _add(layer: _Layer, key: str, value: Any, source: str, problems: list[str]) -> None:
    """Check one typed value (file, flag) and keep it, or record the problem under `source`."""
    if key not in _FIELDS:
        problems.append(f"{source}: {_unknown(key)}")
        return
    typed, problem = _convert(key, value)
    if problem is None and (semantic := _semantic(key, typed)):
        problem = f"{key}: {semantic}"
    if problem:
        problems.append(f"{source}: {problem}")
    else:
        layer[key] = (typed, source)


def _from_file(path: str, problems: list[str]) -> _Layer:
    import tomllib  # only this layer needs it

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        if _starts_with_bom(path):  # tomllib says "Invalid statement (at line 1, column 1)"
            raise ConfigError(
                f"{path}: invalid TOML: the file starts with a byte order mark (BOM, which some "
                "editors write); save it as UTF-8 without one"
            ) from exc
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8 text; tomllib lets the decoding error out
        raise ConfigError(
            f"{path}: invalid TOML: not UTF-8 text (byte {exc.start} cannot be decoded)"
        ) from exc
    layer: _Layer = {}
    for section, table in data.items():
        if section not in _SECTIONS and not isinstance(table, dict):
            problems.append(f"{path}: {_outside_sections(section)}")
        elif section not in _SECTIONS:
            problems.append(f"{path}: {_unknown_section(section)}")
        elif not isinstance(table, dict):
            problems.append(f"{path}: {section}: expected a table [{section}]")
        else:
            for name, value in table.items():
                _add(layer, f"{section}.{name}", value, path, problems)
    return layer


def _starts_with_bom(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(3) == b"\xef\xbb\xbf"
    except OSError:
        return False


def _describe(ftype: Any) -> str:
    """What a text value must look like, e.g. "an integer >= 1"."""
    info = mi.type_info(ftype)
    if isinstance(info, mi.LiteralType):
        return "one of " + ", ".join(repr(v) for v in info.values)
    if isinstance(info, mi.ListType):
        return "a comma-separated list or a JSON array of strings"
    if isinstance(info, mi.BoolType):
        return "true or false"
    if isinstance(info, mi.StrType):
        return "a non-empty string" if info.min_length else "a string"
    noun = "an integer" if isinstance(info, mi.IntType) else "a number"
    ops = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
    bounds = [f"{op} {getattr(info, name)}" for name, op in ops if getattr(info, name) is not None]
    return " and ".join([f"{noun} {bounds[0]}", *bounds[1:]]) if bounds else noun


def _parse_text(raw: str, ftype: Any) -> Any:
    """Text (an environment variable or a flag) -> the field's type; ValueError when it is not."""
    info = mi.type_info(ftype)
    if isinstance(info, mi.IntType):
        return int(raw)
    if isinstance(info, mi.FloatType):  # "nan" stays text, which the conversion rejects;
        value = float(raw)  # "inf" is read as TOML's `inf` is (where the key allows it)
        return raw if math.isnan(value) else value
    if isinstance(info, mi.ListType):
        items = [item.strip() for item in raw.split(",") if item.strip()]
        return json.loads(raw) if raw.lstrip().startswith("[") else items
    if isinstance(info, mi.BoolType):
        return _BOOLEANS[raw.strip().lower()]  # KeyError: not a boolean
    return raw


_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _add_text(layer: _Layer, key: str, raw: str, source: str, problems: list[str]) -> None:
    """Parse and check one text value (a variable, a flag); problems name `source`."""
    try:
        typed, problem = _convert(key, _parse_text(raw, _FIELDS[key]))
    except (ValueError, KeyError):
        typed, problem = None, "not parsable"
    if problem:
        problems.append(f"{source}: expected {_describe(_FIELDS[key])}, got {mask_url(raw)!r}")
    elif semantic := _semantic(key, typed):
        problems.append(f"{source}: {semantic}")
    else:
        layer[key] = (typed, source)


def _from_env(env: Mapping[str, str], problems: list[str]) -> _Layer:
    """The Go names, then RUNEWORKER_<SECTION>_<KEY> (which so wins); variables of an unknown
    section are ignored (they may belong to another tool, or be one of runeworker's own such
    as RUNEWORKER_CONFIG), unknown keys of a known one are not, and neither is a section
    misspelled (RUNEWORKER_WORKERS_PROCESSES), which would be ignored in silence."""
    names = {var: key for var, key in GO_ENV_VARS.items() if var in env}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX):
            continue
        section, _, name = var.removeprefix(ENV_PREFIX).lower().partition("_")
        if section in _SECTIONS:
            names[var] = f"{section}.{name}"
        elif name and (close := _close_section(section)) is not None:
            meant = f"{ENV_PREFIX}{close}_{name}".upper()
            hint = meant if f"{close}.{name}" in _FIELDS else f"section {close!r}"
            problems.append(f"{var}: unknown section {section!r} (did you mean {hint}?)")
    layer: _Layer = {}
    for var, key in names.items():
        if key in _FIELDS:
            _add_text(layer, key, env[var], var, problems)
        else:
            problems.append(f"{var}: {_unknown(key)}")
    return layer


def _from_overrides(overrides: Mapping[str, Any], problems: list[str]) -> _Layer:
    layer: _Layer = {}
    for key, value in overrides.items():
        if value is None:  # a flag that was not given
            continue
        if isinstance(value, str) and key in _FIELDS:
            _add_text(layer, key, value, f"{COMMAND_LINE}: {key}", problems)
        else:
            _add(layer, key, value, COMMAND_LINE, problems)
    return layer


def _defaults() -> _Layer:
    tree = msgspec.to_builtins(Config())
    return {f"{s}.{k}": (v, "default") for s, table in tree.items() for k, v in table.items()}


def _build(values: _Layer) -> Config:
    tree: dict[str, dict[str, Any]] = {}
    for key, (value, _source) in values.items():
        section, _, name = key.partition(".")
        tree.setdefault(section, {})[name] = value
    # Cannot fail: every value was converted to its field's type on the way in.
    return msgspec.convert(tree, Config, strict=True)


# seconds a delivery handed back before RabbitMQ's consumer_timeout must have to come round
# again (a redelivery may wait for its original's receipt, `Parking`, up to 2 s)
ACK_MARGIN = 30.0


def _cross_checks(values: _Layer) -> list[str]:
    """Rules between two keys; the message says where each value came from."""
    problems = []
    for low, high in (
        ("broker.retry_delay", "broker.retry_delay_max"),
        ("supervisor.restart_backoff", "supervisor.restart_backoff_max"),
    ):
        (lo, lo_src), (hi, hi_src) = values[low], values[high]
        if hi < lo:
            problems.append(f"{high} = {hi} ({hi_src}) must be >= {low} = {lo} ({lo_src})")
    # the supervisor kills a child whose node runs past worker.timeout (no heartbeat)
    (limit, limit_src) = values["worker.timeout"]
    for key in ("worker.node_timeout", "agent.total_timeout"):
        (run, run_src) = values[key]
        if run and run >= limit:
            problems.append(
                f"{key} = {run} ({run_src}) must be < worker.timeout = {limit} "
                f"({limit_src}): the supervisor kills a child whose node runs longer"
            )
    # a delivery may wait for one node's step and then run its own before it is acknowledged
    (acks, acks_src) = values["broker.consumer_timeout"]
    if acks and 2 * limit + ACK_MARGIN > acks:
        problems.append(
            f"broker.consumer_timeout = {acks} ({acks_src}) must be at least twice worker.timeout "
            f"= {limit} ({limit_src}) plus {ACK_MARGIN:g} s: a delivery may wait for one step "
            "as long as worker.timeout, then run its own as long, and RabbitMQ closes the "
            "channel of a delivery left unacknowledged for its consumer_timeout; raise "
            "consumer_timeout on the broker (rabbitmq.conf) and broker.consumer_timeout with "
            "it, or set 0 when the broker has none"
        )
    # an execution's keys live redis.key_ttl from the last step that touched them: a step of
    # an execution with parallel branches that runs longer finds its state expired and fails
    # it (runeworker/engine/state.py `StateLost`; deploy/RUNBOOK.md, RuneworkerStateLost)
    (ttl, ttl_src) = values["redis.key_ttl"]
    if math.isfinite(limit) and ttl <= limit:
        problems.append(
            f"redis.key_ttl = {ttl} ({ttl_src}) must be > worker.timeout = {limit} "
            f"({limit_src}): a node may run as long as worker.timeout, and an execution whose "
            "keys expire meanwhile fails as lost"
        )
    return problems + _topology_checks(values)


def _topology_checks(values: _Layer) -> list[str]:
    """Which broker nodes and which kind of Redis: one way each, said once."""
    problems = []
    urls, urls_src = values["broker.urls"]
    url_src = values["broker.url"][1]
    if urls and url_src != "default":
        problems.append(
            f"broker.urls ({urls_src}) and broker.url ({url_src}) are both set: "
            "set broker.urls for a cluster's nodes or broker.url for one, not both"
        )
    sentinels, s_src = values["redis.sentinels"]
    service, service_src = values["redis.service_name"]
    cluster, c_src = values["redis.cluster"]
    redis_url = values["redis.url"][0]
    if sentinels and cluster:
        problems.append(
            f"redis.sentinels ({s_src}) and redis.cluster ({c_src}) are both set: "
            "Redis Sentinel and Redis Cluster are two different deployments; choose one"
        )
    if sentinels and not service:
        problems.append(f"redis.sentinels ({s_src}) needs redis.service_name, the master's name")
    if service and not sentinels:
        problems.append(f"redis.service_name ({service_src}) is only used with redis.sentinels")
    if (sentinels or cluster) and str(redis_url).startswith("unix:"):
        problems.append("redis.url must be redis:// or rediss:// with sentinels or a cluster")
    if cluster and urlsplit(str(redis_url)).path.strip("/") not in ("", "0"):
        problems.append(f"redis.cluster ({c_src}): a Redis Cluster has database 0 only")
    return problems


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults < TOML file < environment < `overrides` (dotted keys from command-line flags,
    values typed or text; None values are skipped). `env` defaults to os.environ; the file is
    `path`, else $RUNEWORKER_CONFIG. Raises ConfigError listing every problem, one a line, each
    naming the key and its source. An empty `metrics.directory` becomes
    `$RUNTIME_DIRECTORY/metrics` when systemd set RUNTIME_DIRECTORY."""
    env = os.environ if env is None else env
    problems: list[str] = []
    values = _defaults()
    file = config_file(path, env)
    if file is not None:
        values.update(_from_file(file, problems))
    values.update(_from_env(env, problems))
    values.update(_from_overrides(overrides or {}, problems))
    if not problems:
        problems = _cross_checks(values)
    if problems:
        raise ConfigError("\n".join(problems))
    cfg = _build(values)
    runtime_dir = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if not cfg.metrics.directory and runtime_dir:
        cfg.metrics.directory = os.path.join(runtime_dir, "metrics")
    return cfg


def changes(old: Config, new: Config) -> list[tuple[str, Any, Any]]:
    """(`section.key`, old value, new value) of every setting that differs, URL passwords
    masked: what a reload logs. A URL whose password alone changed (which masked reads the
    same) is reported too, its new value saying so."""
    raw_before, raw_after = msgspec.to_builtins(old), msgspec.to_builtins(new)
    before, after = masked(old), masked(new)
    found = []
    for section, table in raw_after.items():
        for key, value in table.items():
            if raw_before[section][key] == value:
                continue
            shown = after[section][key]
            if shown == before[section][key]:
                shown = f"{_brief(shown)} (another password)"
            found.append((f"{section}.{key}", before[section][key], shown))
    return found


def _brief(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)
