"""The embedded runner: `LocalRunner` in process, and `runeworker run` as a real subprocess."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runeworker.commands.files import example_names
from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import CompletionMessage, NodeStatusMessage
from runeworker.engine.registry import NodeContext, node
from runeworker.engine.state import MemoryStore
from runeworker.errors import WorkflowError

COMPLETION_KEYS = {"workflow_id", "execution_id", "status", "final_context", "completed_at"}
COMPLETION_KEYS |= {"total_duration_ms"}
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@node("runner.pair")
def _pair(ctx: NodeContext) -> dict[str, Any]:
    return {"pair": (1, 2)}


@node("runner.kind")
def _kind(ctx: NodeContext) -> dict[str, Any]:
    return {"kind": type(ctx.context["$Pair"]["pair"]).__name__}


def definition(nodes: list[dict[str, Any]], edges: list[tuple[str, str, str]]) -> bytes:
    edge_list = [{"id": i, "src": s, "dst": d} for i, s, d in edges]
    return msgspec.json.encode({"nodes": nodes, "edges": edge_list})


def log(node_id: str, name: str, message: str) -> dict[str, Any]:
    return {"id": node_id, "name": name, "type": "log", "parameters": {"message": message}}


def ok(*names: str) -> list[tuple[str, str]]:
    return [(name, st) for name in names for st in ("running", "success")]


def run_local(
    defn: bytes, inputs: dict[str, Any] | None = None
) -> tuple[list[NodeStatusMessage], CompletionMessage | None]:
    statuses: list[NodeStatusMessage] = []
    done = LocalRunner(on_status=statuses.append).run(start_message(defn, inputs))
    return statuses, done


HELLO = resources.files("runeworker.examples").joinpath("hello.json").read_bytes()
TRIGGER = {"id": "trigger", "name": "Start", "type": "ManualTrigger", "trigger": True}


# -- LocalRunner ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "last", "message"),
    [(36, "Welcome", "Welcome aboard, Hello, Ada! You are 36."),
     (12, "ComeBackLater", "Come back in a few years, Ada.")],
)  # fmt: skip
def test_local_runner_runs_hello(age: int, last: str, message: str) -> None:
    inputs = {"name": "Ada", "age": age}
    statuses, done = run_local(HELLO, inputs)
    assert [(s.node_name, s.status) for s in statuses] == ok("Greet", "IsAdult", last)
    assert done is not None and done.status == "completed"
    assert done.workflow_id == "local" and UUID4.match(done.execution_id)
    assert {s.execution_id for s in statuses} == {done.execution_id}
    final = done.final_context
    assert set(final) == {"$input", "$trigger", "$Greet", "$IsAdult", "$" + last}
    assert (final["$input"], final["$trigger"]) == (inputs, inputs)
    assert final["$Greet"]["message"] == f"Hello, Ada! You are {age}."
    assert final["$IsAdult"] == {"result": age >= 18, "expression": f"{age} >= 18"}
    assert final["$" + last]["message"] == message


def test_start_message() -> None:
    msg = start_message(HELLO, {"a": 1}, workflow_id="wf-9", execution_id="ex-9")
    assert (msg.workflow_id, msg.execution_id, msg.current_node) == ("wf-9", "ex-9", "trigger")
    assert msg.accumulated_context == {"$input": {"a": 1}, "$trigger": {"a": 1}}
    assert bytes(msg.workflow_definition) == HELLO
    assert msg.from_node is msgspec.UNSET and msg.branch_token is msgspec.UNSET
    assert start_message(HELLO).accumulated_context == {}


def test_without_trigger_the_root_node_runs_first() -> None:
    defn = definition([log("b", "B", "two"), log("a", "A", "one")], [("e1", "a", "b")])
    assert start_message(defn).current_node == "a"
    statuses, done = run_local(defn)
    assert [(s.node_name, s.status) for s in statuses] == ok("A", "B")
    assert done is not None and set(done.final_context) == {"$A", "$B"}


def test_no_start_node_is_an_error() -> None:
    defn = definition(
        [log("a", "A", "x"), log("b", "B", "y")], [("e1", "a", "b"), ("e2", "b", "a")]
    )
    with pytest.raises(WorkflowError, match=r"^workflow has no trigger node and no start node$"):
        start_message(defn)


def test_steps_go_through_the_wire_encoding() -> None:
    nodes: list[dict[str, Any]] = [TRIGGER, {"id": "p", "name": "Pair", "type": "runner.pair"},
             {"id": "k", "name": "Kind", "type": "runner.kind"}]  # fmt: skip
    _, done = run_local(definition(nodes, [("e1", "trigger", "p"), ("e2", "p", "k")]))
    assert done is not None
    assert done.final_context == {"$Pair": {"pair": [1, 2]}, "$Kind": {"kind": "list"}}


def test_runner_uses_the_given_executor() -> None:
    nodes = [log(f"n{i}", f"N{i}", "x") for i in range(4)]
    edges = [(f"e{i}", f"n{i}", f"n{i + 1}") for i in range(3)]
    runner = LocalRunner(Executor(MemoryStore(), max_steps=2))
    done = runner.run(start_message(definition(nodes, edges)))
    assert done is not None
    limit = "node N2 (n2) failed: execution exceeded the maximum of 2 steps"
    assert (done.status, done.failure_reason) == ("failed", limit)


def test_runner_returns_none_without_completion() -> None:
    executor = Executor(MemoryStore())
    nodes = [log("a", "A", "x"), log("b", "B", "x"), log("c", "C", "x")]
    fan = definition(nodes, [("e1", "a", "b"), ("e2", "a", "c")])  # branch tokens in the store
    start = start_message(fan, execution_id="ex-1")
    assert LocalRunner(executor).run(start) is not None
    stray = msgspec.structs.replace(start, branch_token="unknown")  # not a live branch
    assert LocalRunner(executor).run(stray) is None


# -- the command line -----------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runeworker", "run", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def lines(out: str) -> list[str]:
    return out.rstrip("\n").split("\n")


COMPLETED_LINE = re.compile(r"^workflow completed in \d+ ms$")


@pytest.mark.parametrize("name", example_names())
def test_every_example_runs(name: str, tmp_path: Path) -> None:
    proc = cli(name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    *statuses, last = lines(proc.stdout)
    assert COMPLETED_LINE.match(last), last
    seen = [line.split()[2] for line in statuses]
    assert seen and set(seen) <= {"running", "success", "failed", "waiting"}
    starts = seen.count("running")
    # one end per start, plus the success of each wait node resumed after its `waiting`
    assert starts <= len(seen) - starts <= starts + seen.count("waiting")


def test_json_prints_wire_messages(tmp_path: Path) -> None:
    proc = cli("hello", "--json", "--input", '{"name": "Bo", "age": 40}', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    *statuses, last = [msgspec.json.decode(line) for line in lines(proc.stdout)]
    trail = [(s["node_name"], s["status"]) for s in statuses]
    assert trail == ok("Greet", "IsAdult", "Welcome")
    assert set(last) == COMPLETION_KEYS
    assert last["status"] == "completed"
    assert {s["execution_id"] for s in statuses} == {last["execution_id"]}
    assert last["final_context"]["$Greet"]["message"] == "Hello, Bo! You are 40."


def test_data_cannot_forge_a_status_line_nor_send_terminal_escapes(tmp_path: Path) -> None:
    """The text of a status comes from the data (an input, a server's answer): its control
    characters are escaped, so each status stays one line and no escape reaches the terminal."""
    name = "x\n✓ Forged                   success       0 ms  \x1b[2J\x9b\r"
    proc = cli("hello", "--input", json.dumps({"name": name, "age": 40}), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[1:3] for line in lines(proc.stdout)[:-1]] == [
        [n, st] for n in ("Greet", "IsAdult", "Welcome") for st in ("running", "success")
    ]
    assert "\x1b" not in proc.stdout and "\x9b" not in proc.stdout and "\r" not in proc.stdout
    escaped = "Hello, x\\n✓ Forged                   success       0 ms  \\x1b[2J\\x9b\\r!"
    assert lines(proc.stdout)[1].endswith(f"  {escaped} You are 40.")


@pytest.fixture
def greet_file(tmp_path: Path) -> Path:
    path = tmp_path / "greet.json"
    nodes = [TRIGGER, log("greet", "Greet", "Hello {{ $input.name }}")]
    path.write_bytes(definition(nodes, [("e1", "trigger", "greet")]))
    return path


def test_halted_workflow_exits_1(greet_file: Path) -> None:
    proc = cli(str(greet_file), cwd=greet_file.parent)
    assert proc.returncode == 1, proc.stderr
    reason = ("node Greet (greet) failed: parameter 'message': reference $input.name: "
              "node 'input' not found in context")  # fmt: skip
    assert re.fullmatch(rf"workflow halted in \d+ ms: {re.escape(reason)}", lines(proc.stdout)[-1])
    assert [line.split()[1:3] for line in lines(proc.stdout)[:-1]] == [
        ["Greet", "running"], ["Greet", "failed"]]  # fmt: skip


def test_input_from_file(greet_file: Path) -> None:
    (greet_file.parent / "input.json").write_text('{"name": "Cy"}')
    proc = cli(str(greet_file), "--input", "@input.json", cwd=greet_file.parent)
    assert proc.returncode == 0, proc.stderr
    assert COMPLETED_LINE.match(lines(proc.stdout)[-1])


@pytest.mark.parametrize(
    ("args", "error"),
    [(["--input", "{x"], "error: --input is not valid JSON: "),
     (["--input", "[1]"], "error: --input must be a JSON object\n")],
)  # fmt: skip
def test_bad_input_exits_2(args: list[str], error: str, greet_file: Path) -> None:
    proc = cli(str(greet_file), *args, cwd=greet_file.parent)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith(error), proc.stderr


def test_input_of_bytes_that_are_not_utf8_exits_2_without_a_traceback(greet_file: Path) -> None:
    """A shell hands over any bytes: Python's argv holds them as surrogate escapes."""
    argv = [sys.executable, "-m", "runeworker", "run", str(greet_file), "--input"]
    proc = subprocess.run(
        [*argv, b'{"name": "\xff"}'],
        cwd=greet_file.parent, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "error: --input is not valid JSON: Invalid UTF-8 encoded string\n"


def test_an_input_file_that_cannot_be_read_is_named_as_the_input(greet_file: Path) -> None:
    proc = cli(str(greet_file), "--input", "@missing.json", cwd=greet_file.parent)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "error: --input @missing.json: cannot read the file: No such file or directory\n"
    )


def test_a_directory_is_named_as_one_not_as_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    proc = cli("flows", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "error: flows is a directory, not a workflow file\n"
    (tmp_path / "hello").mkdir()  # a directory does not hide the example of its name
    assert cli("hello", cwd=tmp_path).returncode == 0


def test_a_workflow_read_from_a_pipe_runs(tmp_path: Path) -> None:
    """`runeworker run <(jq ... flow.json)` gives a /dev/fd path to a pipe, not a file: it was
    'no such workflow file or example', where `--input @<(...)` worked."""
    proc = subprocess.run(
        [sys.executable, "-m", "runeworker", "run", "/dev/stdin"],
        input=HELLO.decode(), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert COMPLETED_LINE.match(lines(proc.stdout)[-1])


def test_missing_workflow_exits_2(tmp_path: Path) -> None:
    proc = cli(str(tmp_path / "missing.json"), cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    expected = f"error: no such workflow file or example: {tmp_path / 'missing.json'} (examples: "
    assert proc.stderr.startswith(expected), proc.stderr


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # a bare definition has no field `workflow_definition`: it was named as the problem
        ("{}", "error: the input is neither a workflow definition (an object with 'nodes') nor "
               "an execution message (an object with 'workflow_definition')\n"),
        ('{"nodes": []}', "error: the workflow definition must contain at least one node\n"),
        # people read files by line: the position is given as `validate` gives it
        ('{"nodes": [\n  {"id": "a",, }]}',
         "error: cannot read the workflow: JSON is malformed: expected '\"' "
         "(byte 25, line 2, column 14)\n"),
    ],
    ids=["empty_object", "no_node", "malformed"],
)  # fmt: skip
def test_a_file_that_is_no_workflow_is_named_as_validate_names_it(
    text: str, error: str, tmp_path: Path
) -> None:
    path = tmp_path / "flow.json"
    path.write_text(text)
    proc = cli(str(path), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", error)
    checked = subprocess.run(
        [sys.executable, "-m", "runeworker", "validate", str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.stderr == error.replace("error: ", "invalid: ", 1)


def test_files_an_editor_saved_with_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    """Notepad's UTF-8 starts with a BOM, which RFC 8259 lets a reader ignore: `run`, `validate`
    and `convert` said "invalid character (byte 0, line 1, column 1)" of a valid file."""
    bom = b"\xef\xbb\xbf"
    hello = resources.files("runeworker.examples").joinpath("hello.json").read_bytes()
    (tmp_path / "hello.json").write_bytes(bom + hello)
    (tmp_path / "input.json").write_bytes(bom + b'{"name": "Bo", "age": 40}')
    proc = cli("hello.json", "--input", "@input.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Hello, Bo! You are 40." in proc.stdout
    template = Path(__file__).resolve().parents[1] / "templates" / "fortune-cookie.json"
    (tmp_path / "template.json").write_bytes(bom + template.read_bytes())
    for command in ("validate", "convert"):
        done = subprocess.run(
            [sys.executable, "-m", "runeworker", command, "template.json"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)


def test_cycle_exits_2_naming_the_cycle(tmp_path: Path) -> None:
    path = tmp_path / "loop.json"
    nodes = [log("a", "A", "x"), log("b", "B", "y")]
    path.write_bytes(definition(nodes, [("e1", "a", "b"), ("e2", "b", "a")]))
    proc = cli(str(path), cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")  # nothing ran
    assert "invalid workflow: cycle: a -> b -> a\n" in proc.stderr


def test_ctrl_c_ends_a_long_wait_with_exit_130_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "year.json"
    pause = {"id": "pause", "name": "Pause", "type": "wait",
             "parameters": {"amount": 365, "unit": "days"}}  # fmt: skip
    path.write_bytes(definition([TRIGGER, pause], [("e1", "trigger", "pause")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runeworker", "run", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell's background job ignores SIGINT, and so would its children
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split()[1:3] == ["Pause", "running"]
        assert proc.stdout.readline().split()[1:3] == ["Pause", "waiting"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (130, "")
    assert re.fullmatch(r"interrupted; execution [0-9a-f-]{36} did not complete\n", err), err


# -- where an execution starts: exactly one trigger (issue 11, item 10) ------------------------

TWO_TRIGGERS = definition(
    [TRIGGER, {**TRIGGER, "id": "t2", "name": "Start 2"}, log("a", "A", "x"), log("b", "B", "y")],
    [("e1", "trigger", "a"), ("e2", "t2", "b")],
)
TWO_ROOTS = definition([log("a", "A", "x"), log("b", "B", "y"), log("c", "C", "z")],
                       [("e1", "a", "c")])  # fmt: skip


@pytest.mark.parametrize(
    ("defn", "message"),
    [
        (TWO_TRIGGERS, "workflow has 2 trigger nodes (trigger, t2): exactly one is allowed, "
                       "as the Rune API requires"),
        (TWO_ROOTS, "workflow has no trigger node and 2 start nodes (a, b): add a trigger node "
                    "and connect it to each node to run first (the Rune API requires exactly "
                    "one trigger)"),
    ],
)  # fmt: skip
def test_an_ambiguous_start_is_refused_never_one_silently(defn: bytes, message: str) -> None:
    with pytest.raises(WorkflowError) as info:
        start_message(defn)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("defn", "count"),
    [(TWO_TRIGGERS, "2 trigger nodes"), (TWO_ROOTS, "no trigger node and 2 start nodes")],
)
def test_run_and_validate_refuse_an_ambiguous_start(
    tmp_path: Path, defn: bytes, count: str
) -> None:
    path = tmp_path / "two.json"
    path.write_bytes(defn)
    proc = cli(str(path), cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")  # nothing ran
    assert f"invalid workflow: workflow has {count} " in proc.stderr
    checked = subprocess.run(
        [sys.executable, "-m", "runeworker", "validate", str(path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 1
    assert f"invalid: workflow has {count} " in checked.stderr
