"""Surviving mutants judged equivalent: they change the code but no input can tell them apart.

Keyed by mutmut's mutant name; `line` is (part of) the line the mutant adds, so that a mutant
whose number moved to another change (its function was edited) is reported stale, not excused.
docs/MUTATION.md lists the same entries.
"""

from __future__ import annotations

from typing import NamedTuple


class Equivalent(NamedTuple):
    """Why one surviving mutant is not a gap in the tests."""

    line: str
    reason: str


_R = "runeworker.engine.resolver."
_V = "runeworker.engine.validation."
_S = "runeworker.engine.state."
_B = "runeworker.engine.barriers."
_C = "runeworker.nodes.conditional."
_W = "runeworker.nodes.switch."
_L = "runeworker.engine.ledger."
_P = "runeworker.engine.plan."
_E = "runeworker.engine.executor."
_O = "runeworker.engine.outbox."
_J = "runeworker.engine.rejection."
_N = "runeworker.engine.rtes_numbers."
_D = "runeworker.engine.depth."

_U64_NOTE = (
    "the two differ only for a significand starting 1844674407370955161 (u64::MAX's digits), "
    "whose numbers lie 2.6% above a power of ten times 1.7977, the edge of a double: far "
    "beyond the one rounding in which the two could differ"
)

EQUIVALENT: dict[str, Equivalent] = {
    # -- runeworker/engine/resolver.py --------------------------------------------------------
    _R + "x__parse_reference__mutmut_44": Equivalent(
        "if close <= 0:",
        "a '[' is at position 2 or later (after '$' and a name), so a ']' found after it is at "
        "3 or later: `close` is -1 or > 0, and `< 0`, `<= 0`, `< 1` agree",
    ),
    _R + "x__parse_reference__mutmut_45": Equivalent(
        "if close < 1:", "as x__parse_reference__mutmut_44: `close` is never 0"
    ),
    _R + "x__render_float__mutmut_14": Equivalent(
        '("Infinity" if x >= 0 else "-Infinity")',
        "the branch only sees an infinite x (NaN returned before): x >= 0 and x > 0 agree",
    ),
    _R + "x__render_float__mutmut_15": Equivalent(
        '("Infinity" if x > 1 else "-Infinity")',
        "the branch only sees an infinite x: x > 1 and x > 0 agree",
    ),
    _R + "x__render_float__mutmut_21": Equivalent(
        "if abs(x) >= 1e+21:", "1e+21 is the same float as 1e21"
    ),
    _R + "x__render_float__mutmut_28": Equivalent(
        'if ("e" in text) or True else text',
        "repr() of a finite, non-integral float below 1e21 without an exponent is plain "
        "decimal digits with no trailing zero; Decimal(text) formatted with 'f' is that text",
    ),
    _R + "x__render_float__mutmut_35": Equivalent(
        'format(Decimal(text), "F")',
        "'F' differs from 'f' only for NaN and infinities, which are handled before",
    ),
    _R + "x__secret_strings__mutmut_9": Equivalent(
        'k.rsplit(".", )[-1]', "the last part of a dotted key is the same for any maxsplit"
    ),
    _R + "x__secret_strings__mutmut_12": Equivalent(
        'k.rsplit(".", 2)[-1]', "the last part of a dotted key is the same for any maxsplit"
    ),
    _R + "x_a_json_kind__mutmut_13": Equivalent(
        'name[0] in "XXaeiouXX"',
        "json_kind names are lower case: the added 'X' never matches their first letter",
    ),
    _R + "xǁResolverǁ_secrets__mutmut_17": Equivalent(
        "_MIN_SUBSTRING_SECRET), key=None)",
        "the order of the alternation matters only between secrets that match at the same "
        "place, i.e. one a prefix of the other; for those, sorting by text and by length agree "
        "(the longer one first after reversed())",
    ),
    _R + "xǁResolverǁ_secrets__mutmut_19": Equivalent(
        "_MIN_SUBSTRING_SECRET), )", "as xǁResolverǁ_secrets__mutmut_17"
    ),
    _R + "xǁResolverǁ_secrets__mutmut_2": Equivalent(
        "if self._masker is not None and not",
        "the shortcut only skips a computation that gives the same value: without credentials "
        "and secrets the loop finds no strings and no pattern, (frozenset(), None), which is "
        "_NO_SECRETS",
    ),
    _R + "xǁResolverǁ_secrets__mutmut_5": Equivalent(
        "self._masker = None", "as xǁResolverǁ_secrets__mutmut_2"
    ),
    _R + "xǁResolverǁ_root__mutmut_1": Equivalent(
        "part: bool = True",
        "the default is never used: the one caller, _lookup, passes part=bool(segments)",
    ),
    _R + "xǁResolverǁlookup__mutmut_2": Equivalent(
        "literal_fallback=None)", "None and False are both false where the flag is read"
    ),
    # -- runeworker/engine/validation.py ------------------------------------------------------
    _V + "x__type_and_parameters__mutmut_15": Equivalent(
        "get_close_matches(node.type, list(registry), )",
        "only close[0] is used: the best match is the same whether 1 or 3 are asked for",
    ),
    _V + "x__type_and_parameters__mutmut_17": Equivalent(
        "get_close_matches(node.type, list(registry), n=2)",
        "only close[0] is used: the best match is the same whether 1 or 2 are asked for",
    ),
    _V + "x__components__mutmut_7": Equivalent(
        "low = [1] * len(adj)", "visit() sets low[v] before anything reads it"
    ),
    _V + "x__components__mutmut_10": Equivalent(
        "on_stack = [True] * len(adj)",
        "on_stack[w] is read only for a visited w, and visit() sets it",
    ),
    _V + "x__components__mutmut_14": Equivalent(
        "counter = 1", "Tarjan's indexes are only compared with each other: any start works"
    ),
    _V + "x__components__mutmut_18": Equivalent(
        "counter += 2", "Tarjan's indexes are only compared with each other: any step > 0 works"
    ),
    _V + "x__pop_component__mutmut_4": Equivalent(
        "on_stack[w] = None", "the flag is only read for its truth: None and False agree"
    ),
    _V + "x__cycle_through__mutmut_20": Equivalent(
        "raise AssertionError(None)",
        "unreachable: a strongly connected component of more than one node, or with a self "
        "loop, always holds a cycle through any of its nodes",
    ),
    _V + "x__cycle_through__mutmut_21": Equivalent(
        'raise AssertionError("XXa strongly', "unreachable (as x__cycle_through__mutmut_20)"
    ),
    _V + "x__cycle_through__mutmut_22": Equivalent(
        'raise AssertionError("A STRONGLY', "unreachable (as x__cycle_through__mutmut_20)"
    ),
    _V + "x_load_for_validation__mutmut_33": Equivalent(
        '"the workflow definition ", )',
        "parse_definition's sentences name `workflow_definition ` at most once, so replacing "
        "the first or every occurrence is the same",
    ),
    _V + "x_load_for_validation__mutmut_38": Equivalent(
        '"the workflow definition ", 2)', "as x_load_for_validation__mutmut_33"
    ),
    _V + "x_load_for_validation__mutmut_41": Equivalent(
        "_with_line(text, None)",
        "input that reaches this line is valid JSON (the shape decoder read it), so msgspec's "
        "sentence has no byte offset and _with_line never looks at the data",
    ),
    _V + "x__with_line__mutmut_8": Equivalent(
        'data.count(b"\\n", None, offset)', "a start of None is a start of 0"
    ),
    _V + "x__with_line__mutmut_21": Equivalent(
        'data.rfind(b"\\n", None, offset)', "a start of None is a start of 0"
    ),
    _V + "x_check_workflow__mutmut_3": Equivalent(
        "return _collect(wf, registry, lenient=None)",
        "`lenient` is read only for its truth (`if not lenient`, `and not lenient` in "
        "_error_policy, _routing and _edge_ref): None and False agree",
    ),
    # -- runeworker/engine/state.py -----------------------------------------------------------
    _S + "xǁMemoryStoreǁsettle__mutmut_23": Equivalent(
        "self.advance(execution_id, token, None, None, None, now_ns)",
        "a cancelled execution has its failure recorded, and advance() reads the children "
        "only while there is none",
    ),
    _S + "xǁMemoryStoreǁsettle__mutmut_24": Equivalent(
        "self.advance(execution_id, token, [], None, None, None)",
        "admit() just opened the execution; advance() reads now_ns only to open one",
    ),
    _S + "xǁMemoryStoreǁsettle__mutmut_41": Equivalent(
        "failure, None)",
        "admit() just opened the execution; advance() reads now_ns only to open one",
    ),
    _S + "xǁMemoryStoreǁarrive__mutmut_20": Equivalent(
        "self.advance(execution_id, None, [], None, None, now_ns)",
        "a cancelled token is never live in MemoryStore (the first failure clears the live set), "
        "so advance() records nothing for it whatever the token it is given",
    ),
    _S + "xǁMemoryStoreǁarrive__mutmut_21": Equivalent(
        "self.advance(execution_id, token, None, None, None, now_ns)",
        "as xǁMemoryStoreǁsettle__mutmut_23: advance() reads the children only while the "
        "execution has no failure, and a cancelled one has",
    ),
    _S + "xǁMemoryStoreǁarrive__mutmut_22": Equivalent(
        "self.advance(execution_id, token, [], None, None, None)",
        "admit() just opened the execution; advance() reads now_ns only to open one",
    ),
    _S + "x_record_arrival__mutmut_46": Equivalent(
        "store.retire(execution_id, m.timer_token, None)",
        "the execution is open (admitted before): retire() hands now_ns to advance(), which "
        "reads it only to open one",
    ),
    _S + "xǁMemoryStoreǁarrive__mutmut_44": Equivalent(
        "record_arrival(self, execution_id, token, verdict, None, arrival)",
        "record_arrival() reads now_ns only to hand it to retire(): as x_record_arrival__mutmut_46",
    ),
    _S + "xǁMemoryStoreǁarrive__mutmut_65": Equivalent(
        "self.advance(execution_id, token, children, None, None, None)",
        "admit() just opened the execution; advance() reads now_ns only to open one",
    ),
    _S + "xǁStateStoreǁschedule__mutmut_1": Equivalent(
        'owner: str = "XXXX"',
        "a default in the StateStore Protocol's own signature, whose body is `...` and is never "
        "run: MemoryStore and RedisStore declare their own",
    ),
    # -- runeworker/engine/barriers.py --------------------------------------------------------
    _B + "xǁMemoryFlowǁmerge_arrive__mutmut_11": Equivalent(
        "return self._decided(m, state, None)",
        "a wait_for_any merge is decided by its first arrival with data and its data never "
        "changes after a decision: every other parent recorded is a ghost, which the result "
        "leaves out, so the winner alone and every parent give the same keys and results",
    ),
    _B + "xǁMemoryFlowǁmerge_arrive__mutmut_60": Equivalent(
        "return self._decided(m, BarrierState.RELEASED, None)",
        "as xǁMemoryFlowǁmerge_arrive__mutmut_11",
    ),
    _B + "xǁMemoryFlowǁ_decided__mutmut_9": Equivalent(
        "names = [winner] if (winner) and False else sorted(m.data)",
        "as xǁMemoryFlowǁmerge_arrive__mutmut_11",
    ),
    _B + "xǁMemoryFlowǁschedule__mutmut_1": Equivalent(
        'owner: str = "XXXX"',
        "the default is never used by the product: both callers (engine/flow.py for waits, "
        "engine/merge_timer.py) pass the execution id as owner",
    ),
    # -- runeworker/nodes/conditional.py ------------------------------------------------------
    _C + "x__structured__mutmut_18": Equivalent(
        'params.text(ctx.params, "operator", "AND", wording=_JOINER)',
        "the joiner is lower-cased right after",
    ),
    _C + "x_route_conditional__mutmut_19": Equivalent(
        "other=None)",
        "params.text (runeworker/nodes/params.py) compares `other` only with 'render' and "
        "'refuse': any other value reads a non-string as not given, as 'default' does",
    ),
    _C + "x_route_conditional__mutmut_27": Equivalent(
        "if (edge_id) or True else None",
        "edge_by_id never has the key '': a workflow with an edge of empty id is refused "
        "before any of its steps runs (structural_problems: 'edges[i] has an empty id', "
        "Plan.make), so get('') is None as the short cut",
    ),
    _C + "x_route_conditional__mutmut_23": Equivalent(
        'other="XXdefaultXX")', "as x_route_conditional__mutmut_19"
    ),
    _C + "x_route_conditional__mutmut_24": Equivalent(
        'other="DEFAULT")', "as x_route_conditional__mutmut_19"
    ),
    # -- runeworker/nodes/switch.py -----------------------------------------------------------
    _W + "x__operands__mutmut_21": Equivalent(
        "text = value if (isinstance(value, str)) and False else render(value)",
        "render() returns a string unchanged",
    ),
    # -- runeworker/engine/ledger.py ----------------------------------------------------------
    _L + "xǁArrivingǁ__init____mutmut_12": Equivalent(
        "self._foreseen: dict[str, list[str]] = None",
        "read only by close() after arrive(), which sets it; without an arrival close() settles",
    ),
    _L + "xǁSettledǁadmit__mutmut_1": Equivalent(
        "return Admission(None, 0)",
        "Turn.take (engine/executor.py) reads this verdict only as 'STALE or CANCELLED?' (None "
        "is neither, as RUN), and Turn._close only as 'CANCELLED?'; flow.py reads a step's "
        "verdict only for merge and wait, which never take this mode (ledger.choose: flow "
        "types are admitted); every settled step reaches Turn._close, which replaces the "
        "verdict and report.verdict by the one settle() returns (never None)",
    ),
    _L + "xǁSingleBranchǁclose__mutmut_3": Equivalent(
        "Transition(closed=None)",
        "Transition.closed is read only for its truth (`if tr.closed:` in Turn._close, "
        "engine/executor.py, the one reader): None and False agree",
    ),
    _L + "xǁSingleBranchǁclose__mutmut_22": Equivalent(
        "Transition(True, COMPLETED, None, started",
        "the failure reason of a transition goes only into outbox.completion(), through "
        "opt(), which makes both '' and None UNSET (key omitted)",
    ),
    _L + "xǁSingleBranchǁclose__mutmut_33": Equivalent(
        "[leaf] if (leaf is not None) or True else []",
        "unreachable with leaf None: without children and failure, Turn._close passes no leaf "
        "only for a CANCELLED verdict (SingleBranch.admit always says RUN) or an ending that "
        "parks or is absorbed (waits, barriers, splits without items, ghosts, resumed merges), "
        "and ledger.choose never gives such steps this mode (no flow types, no ghosts, no "
        "resumed messages)",
    ),
    _L + "xǁAdmittedǁ_pass_or_hold__mutmut_9": Equivalent(
        "self._hold(status, None)", "_Holding._hold ignores its second argument"
    ),
    # -- runeworker/engine/plan.py ------------------------------------------------------------
    _P + "xǁDefinitionsǁ__init____mutmut_1": Equivalent(
        "size: int = 129",
        "the default size bounds memory and parse work only: a definition dropped from the "
        "cache is parsed again from the same bytes into an equal Definition, so every plan is "
        "the same for any size (eviction itself is tested with size=2)",
    ),
    _P + "xǁDefinitionsǁget__mutmut_10": Equivalent(
        "self._cache.popitem(last=None)",
        "OrderedDict.popitem reads `last` for its truth: None drops the oldest entry, as False",
    ),
    _P + "xǁPlanǁmake__mutmut_1": Equivalent(
        "resumed: bool = True,",
        "the default is never used: the one caller, Executor.plan, passes resumed and "
        "replayed by keyword on every call",
    ),
    _P + "xǁPlanǁmake__mutmut_2": Equivalent("replayed: bool = True,", "as xǁPlanǁmake__mutmut_1"),
    _P + "xǁPlanǁmake__mutmut_5": Equivalent(
        "root_token(None)",
        "root_token() ignores its argument: the token of every master message is 'root' "
        "(engine/state.py)",
    ),
    _P + "xǁPlanǁmake__mutmut_24": Equivalent(
        "if error or wf is None and node is None:",
        "when wf or node is None, `error` is already non-empty: node is None whenever wf is, "
        "and a None node sets the 'not found' error two lines above",
    ),
    _P + "xǁPlanǁmake__mutmut_49": Equivalent(
        "Admitted, False, None, error, refused)",
        "a plan with an error is rejected by Turn.take (engine/executor.py) before "
        "plan.resumed is read; Plan.failing keeps the error",
    ),
    _P + "xǁPlanǁmake__mutmut_70": Equivalent(
        "resumed=None, replayed=replayed",
        "a resumed plan without error is of a wait or merge node (Plan.make sets an error "
        "otherwise): flow types make a definition not single-branch and are admitted by "
        "ledger.choose whatever `resumed` says",
    ),
    # -- runeworker/engine/executor.py --------------------------------------------------------
    _E + "xǁTurnǁ__init____mutmut_31": Equivalent(
        "self.verdict = None",
        "Turn.take sets the verdict from the admission before anything reads it; a plan with "
        "an error goes to _reject, whose _close reads it only as 'CANCELLED?' (None is not, "
        "as RUN); report.verdict has its own default",
    ),
    _E + "xǁTurnǁ_unknown_type__mutmut_6": Equivalent(
        "self.on_running(self.status.build(STATUS_RUNNING, 0), None)",
        "this step is admitted: Admitted._pass_or_hold reads the flag only for its truth "
        "(None holds the status as False does) and releases a held status with False",
    ),
    _E + "xǁTurnǁ_reject__mutmut_10": Equivalent(
        "self.on_running(status.build(STATUS_RUNNING, 0), None)",
        "as xǁTurnǁ_unknown_type__mutmut_6 (a plan with an error is admitted)",
    ),
    _E + "xǁTurnǁ_close__mutmut_4": Equivalent(
        "emits = ending.emits if (failure is None) or True else []",
        "every Ending with a failure has no emits: flow.on_error's halt, _at_step_limit, "
        "_unknown_type and _reject build Ending(failure=...) alone (grep 'Ending(' in "
        "engine/flow.py and engine/executor.py)",
    ),
    _E + "xǁTurnǁ_close__mutmut_19": Equivalent(
        'leaf = ""',
        "the store keeps a leaf given with children, a park or a failure, but "
        "outbox.completion() skips a context that does not decode as a JSON object, as '' "
        "does; a failing transition reports the failure's context only",
    ),
    _E + "xǁTurnǁ_close__mutmut_45": Equivalent(
        "self.outbox.messages = [",
        "outbox.messages is empty when _close gets here: this is the only line that fills it, "
        "and a step reaches it once (a step retaken at the limit returned before it)",
    ),
    _E + "xǁTurnǁ_close__mutmut_55": Equivalent(
        "zip(children, emits, strict=None)", "zip reads strict for its truth: None is False"
    ),
    _E + "xǁTurnǁ_close__mutmut_58": Equivalent(
        "zip(children, emits, )", "strict=False is zip's default"
    ),
    _E + "xǁTurnǁ_execute__mutmut_52": Equivalent(
        "error = NodeError(self.resolver.mask(str(done)), done.code, None)",
        "flow.on_success returns only the NodeErrors of flow.py's own checks (split, "
        "aggregator, merge, wait), none of which has details: done.details is None",
    ),
    _E + "xǁTurnǁ_execute__mutmut_55": Equivalent(
        "error = NodeError(self.resolver.mask(str(done)), done.code, )",
        "as xǁTurnǁ_execute__mutmut_52 (None is the default of details)",
    ),
    _E + "xǁTurnǁ_merge_timer__mutmut_28": Equivalent(
        "return self._close(Ending(absorbed=None))",
        "not absorbed, this Ending would be a leaf of its default context {}: "
        "encode({}) joins the final context as an empty object, which adds no key",
    ),
    _E + "xǁTurnǁ_merge_timer__mutmut_29": Equivalent(
        "return self._close(Ending(absorbed=False))", "as xǁTurnǁ_merge_timer__mutmut_28"
    ),
    _E + "xǁTurnǁtake__mutmut_24": Equivalent(
        "self._close(Ending(absorbed=None))",
        "as xǁTurnǁ_merge_timer__mutmut_28 (for a CANCELLED verdict _close passes no leaf at all)",
    ),
    _E + "xǁTurnǁtake__mutmut_25": Equivalent(
        "self._close(Ending(absorbed=False))", "as xǁTurnǁtake__mutmut_24"
    ),
    _E + "xǁTurnǁ_resume__mutmut_7": Equivalent(
        "self.resolver.resolve_params(self.node.params, )",
        "_resume runs for wait nodes only (Plan.make: a resume names a wait or a merge; a "
        "merge goes to _merge_timer), and wait declares no raw parameters: spec.raw is the "
        "empty default of resolve_params' skip",
    ),
    _E + "xǁTurnǁ_retake_at_limit__mutmut_5": Equivalent(
        "self.store, self.msg, self.token, None, self.executor.max_steps",
        "the retaking Admitted ledger is only closed (Admitted.close: store.advance); its "
        "clock and max_steps are read by admit(), which is never called on it",
    ),
    _E + "xǁTurnǁ_retake_at_limit__mutmut_6": Equivalent(
        "self.store, self.msg, self.token, self.clock, None",
        "as xǁTurnǁ_retake_at_limit__mutmut_5",
    ),
    # -- runeworker/engine/outbox.py ----------------------------------------------------------
    _O + "x__whole__mutmut_2": Equivalent(
        "whole = None",
        "decoding a context whole is a shortcut: without it completion() decodes the same "
        "context value by value, which gives the same values (a context whose values all nest "
        "shallowly enough has no placeholder either way)",
    ),
    _O + "x__whole__mutmut_4": Equivalent(
        "return whole if (isinstance(whole, dict)) and False else None", "as x__whole__mutmut_2"
    ),
    _O + "x_completion__mutmut_21": Equivalent("whole = None", "as x__whole__mutmut_2"),
    _O + "x_completion__mutmut_33": Equivalent(
        "final = Resolver(None, credentials=secrets, secrets=embedded).mask(final)",
        "Resolver.mask reads the credentials and secrets only, never the context it was given",
    ),
    _O + "xǁStatusBuilderǁ__init____mutmut_2": Equivalent(
        "self.parameters: dict[str, Any] = None",
        "read only by build(): mask(None) is None, and None and {} both give UNSET (no "
        "`parameters` key), and mask({}) is {}",
    ),
    _O + "xǁStatusBuilderǁbuild__mutmut_2": Equivalent(
        "if masked or r is not None:",
        "`masked` implies a resolver, and a resolver without secrets masks nothing: mask() "
        "returns the value it was given",
    ),
    _O + "xǁStatusBuilderǁbuild__mutmut_8": Equivalent(
        "output = r.mask(output) if (output) or True else output",
        "an empty or missing output masks to itself (mask(None) is None, mask({}) is {})",
    ),
    _O + "xǁStatusBuilderǁbuild__mutmut_53": Equivalent(
        "used = r.used_inputs(None)",
        "used_inputs() without keys sorts the used keys itself: the same keys, in the same order",
    ),
    _O + "xǁStatusBuilderǁbuild__mutmut_57": Equivalent(
        "st.used_inputs = opt(r.mask(used) if (masked) or True else used)",
        "without secrets mask() returns the value it was given",
    ),
    # -- runeworker/engine/rejection.py ------------------------------------------------------
    _J + "x_reject__mutmut_21": Equivalent(
        'workflow_definition=msgspec.Raw(b"XX{}XX")',
        "the stand-in definition names no node either way: a definition that cannot be read "
        "fails the plan, and the failing step's status and completion are the same (node "
        "`unknown` when current_node cannot be read, else that id, and the reason given)",
    ),
    _J + "x_shallow__mutmut_2": Equivalent(
        "kept = None", "a slice from None starts where a slice from 0 does"
    ),
    # -- runeworker/engine/rtes_numbers.py -----------------------------------------------------
    _N + "x__from_parts__mutmut_1": Equivalent(
        "if exponent <= 0:",
        "at exponent 0 the product is the significand (below 2^64) as a double: never infinite",
    ),
    _N + "x__from_parts__mutmut_2": Equivalent("if exponent < 1:", "as x__from_parts__mutmut_1"),
    _N + "x_serde_refuses__mutmut_108": Equivalent(
        "if exp >= _I32:",
        "an exponent of exactly i32::MAX: positive, past 308 either way (refused unless the "
        "significand is 0, as the overflow path says); negative, read either way",
    ),
    _N + "x_serde_refuses__mutmut_15": Equivalent("full = None", "None is as false as False"),
    _N + "x_serde_refuses__mutmut_29": Equivalent(
        "full = None",
        "later digits are tested again, and only after 1844674407370955161 can one fit (a digit "
        "up to 5): " + _U64_NOTE,
    ),
    _N + "x_serde_refuses__mutmut_30": Equivalent("full = False", "as x_serde_refuses__mutmut_29"),
    _N + "x_serde_refuses__mutmut_28": Equivalent(
        "if full or significand * 10 + digit >= _U64:",
        _U64_NOTE,
    ),
    _N + "x_serde_refuses__mutmut_59": Equivalent(
        "if significand * 10 + digit >= _U64:", "as x_serde_refuses__mutmut_28"
    ),
    _N + "x_serde_refuses__mutmut_48": Equivalent(
        "start = None",
        "differs only when the fraction has no digit (`1.`), which is no JSON number: a text "
        "holding one fails its own decoding first",
    ),
    # -- runeworker/engine/depth.py (the numbers RTES overshoots, seventeenth session) --------
    _D + "x__overshoots__mutmut_3": Equivalent(
        "return abs(number) >= _TOO_BIG and serde_refuses(str(number))",
        "2^1023 itself is read by serde_json (it is a double far from the edge): no int at the "
        "boundary is refused",
    ),
    _D + "x_out_of_range__mutmut_8": Equivalent(
        "if abs(item) >= _TOO_BIG:",
        "2^1023 is a double, and serde_json reads it: at the boundary neither check finds anything",
    ),
    _D + "x__refused__mutmut_3": Equivalent(
        'if len(token) <= 200 and "e" not in token and "E" not in token:',
        "an integer or plain decimal of 200 characters is below 1e200: a double holds it and "
        "serde_json reads it, so looking at it answers the same",
    ),
    _D + "x__refused__mutmut_4": Equivalent(
        'if len(token) < 201 and "e" not in token and "E" not in token:',
        "as x__refused__mutmut_3",
    ),
    _D + "x__rtes_number__mutmut_9": Equivalent(
        "return _Out(token) if _refused(token, True) else 1",
        "the stand-in of a number that is not refused is never looked at, only whether it is _Out",
    ),
    _D + "x_number_problem__mutmut_36": Equivalent(
        "if ints or out_of_range(value):",
        "without a run of 309 digits out_of_range finds nothing (no int past 2^1023 is shorter)",
    ),
    _D + "x_number_problem__mutmut_42": Equivalent(
        "if rtes or (ints or _LONG_RUN in shapes or _large_exponent(data, shapes, None)):",
        "without rtes, _located of a text msgspec decoded finds nothing (it would have failed): "
        "the same answer, later",
    ),
    _D + "x_number_problem__mutmut_50": Equivalent(
        "if rtes and (ints or _LONG_RUN in shapes or _large_exponent(data, shapes, )):",
        "past 32 looks the limited search answers True, which only sends more texts to _located",
    ),
    _D + "x_problem__mutmut_4": Equivalent(
        'return _holds(out_of_range(value, rtes=True) if (type(value) is int) or True else "")',
        "out_of_range of a scalar that is no int finds nothing",
    ),
    _D + "x_problem__mutmut_20": Equivalent("found = None", "_holds(None) is '', as _holds('')"),
    _D + "x_problem__mutmut_22": Equivalent(
        "if len(data) >= INT_DIGITS or holds_int_run(data):",
        "out_of_range then walks values without a run of 309 digits: it finds nothing there",
    ),
    _D + "x_problem__mutmut_23": Equivalent(
        "if len(data) > INT_DIGITS and holds_int_run(data):",
        "a container holding an int of 309 digits encodes to at least 311 bytes",
    ),
    _D + "x_published__mutmut_5": Equivalent(
        "return read(raw, None)",
        "the name goes only into the errors, which are caught on the next lines and replaced",
    ),
}
