"""Tests of runeworker.config and `runeworker check-config`: layers, strict errors, masking."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runeworker.commands.check_config import check_config
from runeworker.config import (
    BrokerConfig,
    Config,
    WorkerConfig,
    changes,
    load_config,
    mask_url,
    masked,
    to_node_settings,
)
from runeworker.engine.registry import NodeSettings
from runeworker.errors import ConfigError
from runeworker.masking import mask_url_passwords

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "runeworker.toml"


def write(tmp_path: Path, text: str, name: str = "runeworker.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    return str(info.value)


# --- layers -------------------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = load_config(env={})
    assert cfg == Config()
    assert cfg.broker.url == "amqp://guest:guest@127.0.0.1:5672/"
    assert cfg.broker.queue == "workflow.execution"
    assert cfg.broker.prefetch == 10
    assert cfg.broker.max_deliveries == 3
    assert cfg.redis.url == "redis://127.0.0.1:6379/0"
    assert cfg.redis.key_ttl == 86400
    assert cfg.worker.processes == 2
    assert cfg.worker.timeout == 60.0
    assert cfg.metrics.listen == "127.0.0.1:9464"
    assert cfg.metrics.directory == ""
    assert cfg.nodes.http_deny_networks == [
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
    ]
    assert (cfg.logging.level, cfg.logging.format) == ("INFO", "json")


def test_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[broker]\nprefetch = 25\nurl = "amqps://u:p@rabbit:5671/vh"\n'
        "[worker]\nprocesses = 4\ntimeout = 90\n"
        '[nodes]\nhttp_deny_networks = ["10.0.0.0/8"]\n[logging]\nformat = "text"\n',
    )
    cfg = load_config(path, env={})
    assert cfg.broker.prefetch == 25
    assert cfg.broker.url == "amqps://u:p@rabbit:5671/vh"
    assert cfg.worker.processes == 4
    # A TOML integer is accepted where seconds are a float.
    assert cfg.worker.timeout == 90.0 and isinstance(cfg.worker.timeout, float)
    assert cfg.nodes.http_deny_networks == ["10.0.0.0/8"]
    assert cfg.logging.format == "text"
    assert cfg.broker.queue == "workflow.execution"  # untouched keys keep their default


def test_file_named_by_runeworker_config(tmp_path: Path) -> None:
    path = write(tmp_path, "[worker]\nprocesses = 7\n")
    assert load_config(env={"RUNEWORKER_CONFIG": str(path)}).worker.processes == 7


def test_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[broker]\nprefetch = 25\n[worker]\nmax_memory_mb = 100\n")
    env = {"WORKFLOW_PREFETCH": "40", "RUNEWORKER_WORKER_MAX_MEMORY_MB": "512"}
    cfg = load_config(path, env=env)
    assert cfg.broker.prefetch == 40
    assert cfg.worker.max_memory_mb == 512


def test_overrides_over_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[broker]\nprefetch = 25\n")
    cfg = load_config(
        path,
        env={"WORKFLOW_PREFETCH": "40", "WORKFLOW_CONCURRENCY": "3"},
        overrides={"broker.prefetch": 50, "worker.processes": "6", "logging.level": None},
    )
    assert cfg.broker.prefetch == 50
    assert cfg.worker.processes == 6  # text from a flag is parsed like the environment
    assert cfg.logging.level == "INFO"  # None = flag not given


def test_every_go_env_var() -> None:
    env = {
        "RABBITMQ_URL": "amqp://rune:rune_password@rabbitmq:5672/",
        "REDIS_URL": "redis://redis:6379/1",
        "WORKFLOW_QUEUE_NAME": "custom.execution",
        "WORKFLOW_PREFETCH": "5",
        "WORKFLOW_CONCURRENCY": "8",
    }
    cfg = load_config(env=env)
    assert cfg.broker.url == "amqp://rune:rune_password@rabbitmq:5672/"
    assert cfg.redis.url == "redis://redis:6379/1"
    assert cfg.broker.queue == "custom.execution"
    assert cfg.broker.prefetch == 5
    assert cfg.worker.processes == 8


def test_generic_env_beats_go_name_and_parses_types() -> None:
    env = {
        "WORKFLOW_PREFETCH": "5",
        "RUNEWORKER_BROKER_PREFETCH": "6",
        "RUNEWORKER_WORKER_MAX_MESSAGES_JITTER": "0.25",
        "RUNEWORKER_NODES_HTTP_DENY_NETWORKS": "10.0.0.0/8, 192.168.0.0/16",
        "RUNEWORKER_LOGGING_LEVEL": "DEBUG",
        "RUNEWORKER_UNRELATED_THING": "ignored: not a config section",
    }
    cfg = load_config(env=env)
    assert cfg.broker.prefetch == 6
    assert cfg.worker.max_messages_jitter == 0.25
    assert cfg.nodes.http_deny_networks == ["10.0.0.0/8", "192.168.0.0/16"]
    assert cfg.logging.level == "DEBUG"
    json_list = load_config(env={"RUNEWORKER_NODES_HTTP_DENY_NETWORKS": '["10.0.0.0/8"]'})
    assert json_list.nodes.http_deny_networks == ["10.0.0.0/8"]


def test_dotenv_file_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "RABBITMQ_URL=amqp://evil:evil@elsewhere:5672/\nWORKFLOW_PREFETCH=99\n", ".env")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(env={"WORKFLOW_PREFETCH": "4"})
    assert cfg.broker.url == "amqp://guest:guest@127.0.0.1:5672/"
    assert cfg.broker.prefetch == 4


def test_metrics_directory_under_systemd() -> None:
    cfg = load_config(env={"RUNTIME_DIRECTORY": "/run/runeworker"})
    assert cfg.metrics.directory == "/run/runeworker/metrics"
    explicit = {"RUNTIME_DIRECTORY": "/run/runeworker", "RUNEWORKER_METRICS_DIRECTORY": "/srv/m"}
    assert load_config(env=explicit).metrics.directory == "/srv/m"


def test_to_node_settings() -> None:
    cfg = load_config(
        env={}, overrides={"nodes.smtp_timeout": 5, "nodes.http_default_timeout": 2.5}
    )
    assert to_node_settings(cfg) == NodeSettings(
        http_deny_networks=(
            "169.254.0.0/16",
            "fe80::/10",
            "fd00:ec2::254/128",
            "100.100.100.200/32",
        ),
        http_max_response_bytes=10485760,
        http_default_timeout=2.5,
        smtp_timeout=5.0,
    )


def test_agent_settings_from_file_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\nopenai_base_url = "http://gateway:8080/v1"\nmax_rounds = 3\n')
    env = {
        "RUNEWORKER_AGENT_OPENAI_BASE_URL": "http://localhost:11434/v1",
        "RUNEWORKER_AGENT_GEMINI_BASE_URL": "https://proxy.example/",
        "RUNEWORKER_AGENT_REQUEST_TIMEOUT": "12.5",
    }
    settings = to_node_settings(load_config(path, env=env))
    assert settings.agent_openai_base_url == "http://localhost:11434/v1"  # env over file
    assert settings.agent_gemini_base_url == "https://proxy.example/"
    assert settings.agent_anthropic_base_url == ""
    assert (settings.agent_max_rounds, settings.agent_request_timeout) == (3, 12.5)
    assert (settings.agent_total_timeout, settings.agent_max_retries) == (48.0, 2)  # 80 % of 60


def test_agent_settings_are_checked() -> None:
    assert error_of(env={"RUNEWORKER_AGENT_OPENAI_BASE_URL": "localhost:11434"}) == (
        "RUNEWORKER_AGENT_OPENAI_BASE_URL: expected a URL starting with http:// or https://, "
        "got 'localhost:11434'"
    )
    assert error_of(env={"RUNEWORKER_AGENT_MAX_ROUNDS": "0"}) == (
        "RUNEWORKER_AGENT_MAX_ROUNDS: expected an integer >= 1, got '0'"
    )
    # the supervisor kills a child whose node runs past worker.timeout
    assert error_of(env={"RUNEWORKER_AGENT_TOTAL_TIMEOUT": "60"}) == (
        "agent.total_timeout = 60.0 (RUNEWORKER_AGENT_TOTAL_TIMEOUT) must be < worker.timeout = "
        "60.0 (default): the supervisor kills a child whose node runs longer"
    )
    raised = {"RUNEWORKER_AGENT_TOTAL_TIMEOUT": "120", "RUNEWORKER_WORKER_TIMEOUT": "150"}
    assert to_node_settings(load_config(env=raised)).agent_total_timeout == 120.0
    # unset, it follows worker.timeout (a short worker.timeout is no config error)
    short = load_config(env={"RUNEWORKER_WORKER_TIMEOUT": "30"})
    assert to_node_settings(short).agent_total_timeout == 24.0


def test_node_timeout_reaches_the_nodes() -> None:
    cfg = load_config(env={"RUNEWORKER_WORKER_NODE_TIMEOUT": "12.5"})
    assert to_node_settings(cfg).node_timeout == 12.5
    assert to_node_settings(load_config(env={})) == NodeSettings()


def test_node_timeout_unset_follows_worker_timeout_and_stays_below_it() -> None:
    """A blocking node must end before the supervisor kills its child as hung (no beat for
    worker.timeout): unset, its limit is 80 % of worker.timeout, and a limit that would let it
    run as long is refused."""
    assert to_node_settings(load_config(env={})).node_timeout == 48.0  # 80 % of 60
    short = load_config(env={"RUNEWORKER_WORKER_TIMEOUT": "5"})
    assert to_node_settings(short).node_timeout == 4.0
    assert error_of(env={"RUNEWORKER_WORKER_NODE_TIMEOUT": "60"}) == (
        "worker.node_timeout = 60.0 (RUNEWORKER_WORKER_NODE_TIMEOUT) must be < worker.timeout = "
        "60.0 (default): the supervisor kills a child whose node runs longer"
    )
    raised = {"RUNEWORKER_WORKER_NODE_TIMEOUT": "300", "RUNEWORKER_WORKER_TIMEOUT": "330"}
    assert to_node_settings(load_config(env=raised)).node_timeout == 300.0


def test_node_defaults_have_one_home() -> None:
    """The config's defaults of every node setting are NodeSettings' own."""
    assert to_node_settings(Config()) == NodeSettings()
    # unset (0) in the config, NodeSettings' default is what the default worker.timeout gives
    assert Config().worker.node_timeout == 0.0


# --- errors name the key and the source ---------------------------------------------------------


def test_unknown_key_in_file_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[worker]\nprocs = 3\n")
    assert error_of(path, env={}) == (
        f"{path}: unknown key 'worker.procs' (did you mean 'worker.processes'?)"
    )


def test_unknown_section_in_file_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[workers]\nprocesses = 3\n[extras]\nx = 1\n")
    assert error_of(path, env={}).splitlines() == [
        f"{path}: unknown section 'workers' (did you mean 'worker'?)",
        f"{path}: unknown section 'extras'",  # nothing close: no guess
    ]


@pytest.mark.parametrize(
    ("var", "problem"),
    [
        ("RUNEWORKER_WORKERS_PROCESSES",
         "unknown section 'workers' (did you mean RUNEWORKER_WORKER_PROCESSES?)"),
        ("RUNEWORKER_METRIC_LISTEN",
         "unknown section 'metric' (did you mean RUNEWORKER_METRICS_LISTEN?)"),
        ("RUNEWORKER_NODE_TIMEOUT",  # worker.node_timeout, read as a section `node`
         "unknown section 'node' (did you mean section 'nodes'?)"),
    ],
)  # fmt: skip
def test_a_variable_of_a_misspelled_section_is_an_error_not_ignored(var: str, problem: str) -> None:
    """RUNEWORKER_WORKERS_PROCESSES=8 in /etc/runeworker/env was ignored in silence: the pool
    ran with 2 children and nothing said why."""
    assert error_of(env={var: "8"}) == f"{var}: {problem}"


def test_variables_of_other_sections_stay_ignored() -> None:
    """runeworker's own variables that are not config keys, and the test suites' ones."""
    env = dict.fromkeys(
        ("RUNEWORKER_EXTRA_NODE_MODULES", "RUNEWORKER_TEST_REDIS",
         "RUNEWORKER_CLUSTER_WORKFLOWS", "RUNEWORKER_FAULTS_KEEP", "RUNEWORKER_UNRELATED_THING"),
        "1",
    )  # fmt: skip
    assert load_config(env=env) == Config()


def test_wrong_type_in_file_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, '[worker]\nprocesses = "4"\n')
    monkeypatch.chdir(tmp_path)
    assert error_of("runeworker.toml", env={}) == (
        "runeworker.toml: worker.processes: Expected `int`, got `str`"
    )


def test_file_constraint_and_list_item_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[broker]\nprefetch = 0\n[nodes]\nhttp_deny_networks = ["10.0.0.0/8", 5]\n'
    )
    assert error_of(path, env={}).splitlines() == [
        f"{path}: broker.prefetch: Expected `int` >= 1",
        f"{path}: nodes.http_deny_networks[1]: Expected `str`, got `int`",
    ]


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert (
        error_of(missing, env={})
        == f"{missing}: cannot read the config file: No such file or directory"
    )
    broken = write(tmp_path, "[worker\n")
    assert error_of(broken, env={}).startswith(f"{broken}: invalid TOML: ")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[broker]\nqueue = "caf\xe9"\n')  # tomllib lets UnicodeDecodeError out
    assert error_of(latin1, env={}) == (
        f"{latin1}: invalid TOML: not UTF-8 text (byte 21 cannot be decoded)"
    )
    # Notepad's UTF-8: tomllib said "Invalid statement (at line 1, column 1)" of a valid file
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf[worker]\nprocesses = 3\n")
    assert error_of(bom, env={}) == (
        f"{bom}: invalid TOML: the file starts with a byte order mark (BOM, which some editors "
        "write); save it as UTF-8 without one"
    )


def test_sections_are_keyword_only_and_strict() -> None:
    with pytest.raises(TypeError, match="positional arguments"):
        BrokerConfig("amqp://x/")  # type: ignore[call-arg]
    with pytest.raises(msgspec.ValidationError, match="unknown field `procs`"):
        msgspec.convert({"procs": 1}, WorkerConfig)


def test_nan_env_number_is_rejected() -> None:
    assert error_of(env={"RUNEWORKER_WORKER_TIMEOUT": "nan"}) == (
        "RUNEWORKER_WORKER_TIMEOUT: expected a number >= 1, got 'nan'"
    )


def test_infinite_env_number_reads_as_toml_inf(tmp_path: Path) -> None:
    """`timeout = inf` in the file and RUNEWORKER_WORKER_TIMEOUT=inf mean the same (the env
    variable was refused where the file's value was taken); the rules between keys still hold."""
    env = {"RUNEWORKER_WORKER_TIMEOUT": "inf", "RUNEWORKER_BROKER_CONSUMER_TIMEOUT": "0"}
    from_env = load_config(None, env=env).worker.timeout
    path = write(tmp_path, "[worker]\ntimeout = inf\n[broker]\nconsumer_timeout = 0\n")
    assert from_env == load_config(path, env={}).worker.timeout == float("inf")
    assert "consumer_timeout" in error_of(env={"RUNEWORKER_WORKER_TIMEOUT": "inf"})


def test_bad_env_int_names_the_variable() -> None:
    assert error_of(env={"WORKFLOW_PREFETCH": "abc"}) == (
        "WORKFLOW_PREFETCH: expected an integer >= 1 and <= 65535, got 'abc'"
    )
    assert error_of(env={"WORKFLOW_CONCURRENCY": "0"}) == (
        "WORKFLOW_CONCURRENCY: expected an integer >= 1 and <= 256, got '0'"
    )


def test_every_env_problem_is_reported_at_once() -> None:
    env = {
        "RABBITMQ_URL": "",
        "REDIS_URL": "http://user:hunter2@redis/0",
        "RUNEWORKER_WORKER_MAX_MESSAGES_JITTER": "1.5",
        "RUNEWORKER_WORKER_PROCS": "3",
        "RUNEWORKER_LOGGING_FORMAT": "xml",
        "RUNEWORKER_NODES_HTTP_DENY_NETWORKS": "10.0.0.0/8,not-a-net",
        "RUNEWORKER_METRICS_LISTEN": "localhost",
    }
    assert error_of(env=env).splitlines() == [
        "RABBITMQ_URL: expected a non-empty string, got ''",
        "REDIS_URL: expected a URL starting with redis:// or rediss:// or unix://, "
        "got 'http://user:***@redis/0'",
        "RUNEWORKER_LOGGING_FORMAT: expected one of 'json', 'text', got 'xml'",
        "RUNEWORKER_METRICS_LISTEN: expected host:port, [IPv6 address]:port or :port "
        "(or \"\" to disable), got 'localhost'",
        "RUNEWORKER_NODES_HTTP_DENY_NETWORKS: expected IP networks like '169.254.0.0/16', "
        "got 'not-a-net'",
        "RUNEWORKER_WORKER_MAX_MESSAGES_JITTER: expected a number >= 0 and <= 1, got '1.5'",
        "RUNEWORKER_WORKER_PROCS: unknown key 'worker.procs' (did you mean 'worker.processes'?)",
    ]


def test_override_errors_name_the_key() -> None:
    overrides = {"broker.prefetch": "many", "worker.procs": 3, "worker.timeout": 0.5}
    assert error_of(env={}, overrides=overrides).splitlines() == [
        "command line: broker.prefetch: expected an integer >= 1 and <= 65535, got 'many'",
        "command line: unknown key 'worker.procs' (did you mean 'worker.processes'?)",
        "command line: worker.timeout: Expected `float` >= 1.0",
    ]


def test_cross_key_rule_names_both_keys_and_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "[broker]\nretry_delay = 10.0\n")
    env = {"RUNEWORKER_BROKER_RETRY_DELAY_MAX": "5"}
    assert error_of(path, env=env) == (
        "broker.retry_delay_max = 5.0 (RUNEWORKER_BROKER_RETRY_DELAY_MAX) "
        f"must be >= broker.retry_delay = 10.0 ({path})"
    )


# --- masking ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://guest:guest@host:5672/", "amqp://guest:***@host:5672/"),
        ("amqps://rune:p%40ss@rabbit:5671/vhost", "amqps://rune:***@rabbit:5671/vhost"),
        ("amqp://host:5672/", "amqp://host:5672/"),
        ("amqp://guest@host:5672/", "amqp://guest@host:5672/"),
        ("redis://:s3cret@host/0", "redis://:***@host/0"),
        ("redis://default:s3cret@host:6379/1", "redis://default:***@host:6379/1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://host/0?password=s3cret&db=1", "redis://host/0?password=***&db=1"),
        ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=2"),
        ("not a url", "not a url"),
        ("guest:s3cret@rabbit:5672/", "guest:***@rabbit:5672/"),  # the scheme forgotten
        ("user@host", "user@host"),
    ],
)
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET http://ann:pw@h:80/x: refused", "GET http://ann:***@h:80/x: refused"),
        ("got 'ftp://ann:p%40ss@h/x'", "got 'ftp://ann:***@h/x'"),
        ('"https://:tok@h" and http://u:v@w/', '"https://:***@h" and http://u:***@w/'),
        ("GET http://h:8080/a@b: refused", "GET http://h:8080/a@b: refused"),
        ("http://ann@h/ mail ann:pw@h", "http://ann@h/ mail ann:pw@h"),
        ("no url at all", "no url at all"),
    ],
)
def test_mask_url_passwords_in_a_text(text: str, expected: str) -> None:
    assert mask_url_passwords(text) == expected


def test_masked_config() -> None:
    env = {"RABBITMQ_URL": "amqp://rune:topsecret@rabbit:5672/", "REDIS_URL": "redis://:pw@r/1"}
    tree = masked(load_config(env=env))
    assert tree["broker"]["url"] == "amqp://rune:***@rabbit:5672/"
    assert tree["redis"]["url"] == "redis://:***@r/1"
    assert tree["worker"]["processes"] == 2
    sections = {"broker", "redis", "worker", "supervisor", "metrics", "nodes", "integrations"}
    assert set(tree) == sections | {"agent", "logging"}


# --- check-config -------------------------------------------------------------------------------


def test_check_config_prints_masked_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("RUNEWORKER_CONFIG", "RUNTIME_DIRECTORY", "WORKFLOW_PREFETCH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RABBITMQ_URL", "amqp://rune:topsecret@rabbit:5672/")
    monkeypatch.setenv("REDIS_URL", "redis://:alsosecret@redis:6379/1")
    path = write(tmp_path, "[worker]\nprocesses = 3\n")
    assert check_config(str(path), {"broker.prefetch": 7}) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "topsecret" not in out and "alsosecret" not in out
    assert f"file: {path}" in out.splitlines()[0]
    assert '[broker]\nurl = "amqp://rune:***@rabbit:5672/"\n' in out
    parsed = tomllib.loads(out)  # the output is valid TOML
    expected = masked(load_config(path, overrides={"broker.prefetch": 7}))
    assert parsed == expected
    assert (parsed["worker"]["processes"], parsed["broker"]["prefetch"]) == (3, 7)


def test_check_config_prints_an_infinite_value_as_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """json.dumps wrote `timeout = Infinity`: the saved output was no longer a config file."""
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    # a step that may run forever needs a broker without consumer_timeout (0)
    path = write(tmp_path, "[worker]\ntimeout = inf\n[broker]\nconsumer_timeout = 0\n")
    assert check_config(str(path), {}) == 0
    out = capsys.readouterr().out
    assert "\ntimeout = inf\n" in out
    assert tomllib.loads(out)["worker"]["timeout"] == float("inf")  # the output is valid TOML


def test_check_config_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    monkeypatch.setenv("RABBITMQ_URL", "http://rune:topsecret@rabbit/")
    monkeypatch.setenv("WORKFLOW_PREFETCH", "abc")
    assert check_config(None, {}) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "topsecret" not in err
    wanted = "an integer >= 1 and <= 65535"
    assert f"config error: WORKFLOW_PREFETCH: expected {wanted}, got 'abc'\n" in err
    assert "config error: RABBITMQ_URL: expected a URL starting with amqp://" in err


@pytest.mark.parametrize("command", ["run", "serve", "check-config"])
def test_every_config_problem_is_one_line_of_its_own(command: str, tmp_path: Path) -> None:
    """`run` and `serve` printed `config error:` before the first problem only: the others
    read as lines of their own in a journal, without saying what they were."""
    path = write(tmp_path, "[worker]\nprocs = 3\n[broker]\nprefetch = 0\n")
    argv = [sys.executable, "-m", "runeworker", command, "-c", str(path)]
    if command == "run":
        argv.append("hello")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines() == [
        f"config error: {path}: unknown key 'worker.procs' (did you mean 'worker.processes'?)",
        f"config error: {path}: broker.prefetch: Expected `int` >= 1",
    ]


# --- the shipped example stays in sync ----------------------------------------------------------


def test_deploy_example_loads_and_equals_defaults() -> None:
    assert load_config(EXAMPLE, env={}) == Config()


def test_deploy_example_lists_every_key_with_a_comment() -> None:
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    assert data == msgspec.to_builtins(Config())  # every key is present, none extra
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            key = line.split("=")[0].strip()
            assert lines[number - 1].startswith("#"), f"{key} has no comment above it"
            comment = lines[number - 1] if "Default" in lines[number - 1] else lines[number - 2]
            assert "Default" in comment, f"{key}: the comment does not give the default"


# --- operations review --------------------------------------------------------------------------


@pytest.mark.parametrize("count", [257, 100000])
def test_more_processes_than_the_supervisor_has_slots_for_are_refused(
    tmp_path: Path, count: int
) -> None:
    """The liveness board has 256 slots: a pool asked for more spawned 256, logged `all 256
    liveness slots are in use` ten times a second and never sent READY=1."""
    path = write(tmp_path, f"[worker]\nprocesses = {count}\n")
    assert error_of(path, env={}) == f"{path}: worker.processes: Expected `int` <= 256"
    assert error_of(None, env={"WORKFLOW_CONCURRENCY": str(count)}) == (
        f"WORKFLOW_CONCURRENCY: expected an integer >= 1 and <= 256, got '{count}'"
    )
    assert (
        load_config(write(tmp_path, "[worker]\nprocesses = 256\n"), env={}).worker.processes == 256
    )


def test_the_board_has_a_slot_for_every_process_the_config_allows() -> None:
    from runeworker.config import MAX_PROCESSES
    from runeworker.supervisor.children import BOARD_SLOTS

    assert BOARD_SLOTS == MAX_PROCESSES


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("amqp://u:secret@host:notaport/", "the port is not a number from 0 to 65535"),
        ("amqp://u:secret@host:99999/", "the port is not a number from 0 to 65535"),
        ("amqp://u:sec/ret@host:5672/", "percent-encode / ? # in the password"),
        ("amqp://u:sec?ret@host:5672/", "percent-encode / ? # in the password"),
    ],
)
def test_an_unreadable_port_is_told_from_a_password_holding_a_delimiter(url: str, why: str) -> None:
    """A bad port read `percent-encode / ? # in the password`, sending the operator to a
    password that was fine."""
    message = error_of(None, env={"RABBITMQ_URL": url})
    assert message.startswith("RABBITMQ_URL: cannot parse 'amqp://u:***@")
    assert message.endswith(why)
    assert "secret" not in message and "sec" not in message.partition("***")[2]


def test_a_key_outside_any_section_is_named_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, "processes = 3\n[worker]\ntimeout = 90\n")
    assert error_of(path, env={}) == (
        f"{path}: key 'processes' outside any [section]: every key belongs to one "
        "(did you mean 'worker.processes'?)"
    )
    path = write(tmp_path, "x = 1\n")
    assert (
        error_of(path, env={}) == f"{path}: key 'x' outside any [section]: every key belongs to one"
    )


@pytest.mark.parametrize("key", ["prefetch", "heartbeat"])
def test_amqp_short_fields_are_bounded(tmp_path: Path, key: str) -> None:
    """AMQP sends `prefetch` and `heartbeat` as 16-bit fields: 70000 made every child crash in
    basic.qos (`struct.error`, a crash loop) or wait forever behind pika's
    `ProbableAccessDeniedError` for the heartbeat, as if the password were wrong."""
    path = write(tmp_path, f"[broker]\n{key} = 70000\n")
    assert error_of(path, env={}) == f"{path}: broker.{key}: Expected `int` <= 65535"
    path = write(tmp_path, f"[broker]\n{key} = 65535\n")
    assert getattr(load_config(path, env={}).broker, key) == 65535


def test_a_key_ttl_redis_would_refuse_is_refused_here(tmp_path: Path) -> None:
    """`redis.key_ttl = 9999999999999999` passed, and every step then failed in Redis
    (`invalid expire time in 'set' command`): the children reconnected forever, running
    nothing."""
    path = write(tmp_path, "[redis]\nkey_ttl = 9999999999999999\n")
    assert error_of(path, env={}) == f"{path}: redis.key_ttl: Expected `int` <= 2147483647"


def test_a_reload_that_changes_only_a_password_says_so(tmp_path: Path) -> None:
    """A new password in `broker.url` read `0 settings changed` (the masked URLs compare
    equal), so a reload that did roll the children onto it showed nothing; the password is
    still never shown."""
    old = load_config(env={"RABBITMQ_URL": "amqp://u:old-pw@h:5672/v"})
    new = load_config(env={"RABBITMQ_URL": "amqp://u:new-pw@h:5672/v"})
    assert changes(old, new) == [
        ("broker.url", "amqp://u:***@h:5672/v", "amqp://u:***@h:5672/v (another password)")
    ]
    moved = load_config(env={"RABBITMQ_URL": "amqp://u:new-pw@other:5672/v"})
    assert changes(old, moved) == [
        ("broker.url", "amqp://u:***@h:5672/v", "amqp://u:***@other:5672/v")
    ]
    assert changes(old, old) == []


def test_consumer_timeout_must_leave_room_for_two_steps() -> None:
    """A delivery may wait for one step as long as worker.timeout, then run its own as long,
    before it is acknowledged; RabbitMQ closes the channel at its consumer_timeout."""
    with pytest.raises(ConfigError, match=r"broker.consumer_timeout = 100.0 .* at least twice"):
        load_config(
            None, env={}, overrides={"worker.timeout": 40.0, "broker.consumer_timeout": 100.0}
        )
    assert (
        load_config(None, env={}, overrides={"worker.timeout": 35.0}).broker.consumer_timeout
        == 1800
    )
    assert load_config(
        None, env={}, overrides={"worker.timeout": 3600.0, "broker.consumer_timeout": 0}
    )


def test_key_ttl_must_outlast_a_node() -> None:
    """A step longer than redis.key_ttl finds its execution's keys expired and fails it as
    lost: the config that allows it is refused, naming both values and where they came from."""
    error = error_of(env={"RUNEWORKER_REDIS_KEY_TTL": "120", "RUNEWORKER_WORKER_TIMEOUT": "300"})
    assert error.startswith("redis.key_ttl = 120 (RUNEWORKER_REDIS_KEY_TTL) must be > ")
    assert "worker.timeout = 300.0 (RUNEWORKER_WORKER_TIMEOUT)" in error
    ok = {"RUNEWORKER_REDIS_KEY_TTL": "301", "RUNEWORKER_WORKER_TIMEOUT": "300"}
    assert load_config(None, env=ok).redis.key_ttl == 301
