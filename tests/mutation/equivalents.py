"""Surviving mutants judged equivalent: they change the code but no input can tell them apart.

Keyed by mutmut's mutant name; `line` is (part of) the line the mutant adds, or of the line it
deletes prefixed with "-" when it adds none, so that a mutant whose number moved to another
change (its function was edited) is reported stale, not excused.
docs/MUTATION.md lists the same entries.
"""

from __future__ import annotations

from typing import NamedTuple


class Equivalent(NamedTuple):
    """Why one surviving mutant is not a gap in the tests."""

    line: str
    reason: str


def _alike(name: str, reason: str, lines: dict[int, str]) -> dict[str, Equivalent]:
    """Mutants `name` + number, one reason for all: each number with (part of) its line."""
    return {f"{name}{n}": Equivalent(line, reason) for n, line in lines.items()}


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
_M = "runeworker.engine.messages."
_WK = "runeworker.child.worker.xǁWorkerǁ"
_WORKER_FALSY = (
    "read only for its truth (`if not ...`, `... and not ...`, a conditional expression): "
    "None is false as False and 0.0 are"
)
_WORKER_COMMITS = (
    "commits are only counted to compare two counts (which steps of a batch a refused "
    "write found committed): any start and any step keep the order"
)
_WORKER_CLOCK = (
    "a difference of two readings of the monotonic clock equal to the limit, to the "
    "nanosecond: no test can place it, and a step either side is the same behaviour a tick "
    "later"
)
_KNOWN_DEFINITION = (
    "a definition seen before is skipped instead of scanned (`KnownDefinitions`): the same "
    "message either way, decoded whole when the shortcut is not taken"
)
_KNOWN_CONTEXT = (
    "a context seen before is read from its kept entries (`KnownContexts`): the same message "
    "either way, decoded whole when the shortcut is not taken"
)
_UTF8_CHECKED = (
    "the context's values are checked as UTF-8 where they may not be: checking ASCII bytes, "
    "or a kept context's again, finds them valid, and a kept context is kept again the same"
)
_MASK_PASS = (
    "the pass over the nodes is the fast path: whenever the bytes name `credentials` more "
    "often than it masked, the walk after it masks every object's, the nodes' included "
    "(masking a masked block gives the same block), and the count is only tested for zero"
)
_CODEC_CASE = "codec names are case-insensitive"
_NEVER_ERRS = (
    "a str reaching `_decode_problem` encodes to UTF-8 (one holding a lone surrogate was "
    "refused before, as msgspec could not encode it): the error handler is never looked up"
)
_RC = "runeworker.child.receipts."
_DB = "runeworker.child.doubts."
_SC = "runeworker.child.scheduler."
_F = "runeworker.adapters.amqp_frames."
_AR = "runeworker.adapters.amqp_reader.xǁFrameReaderǁ"
_PIKAS = (
    "every negative offset `_delivery` returns means the same to `on_data` (neither `taken > 0` "
    "nor `taken == 0`): pika reads the delivery"
)
_FW = _F + "xǁFrameWriterǁ"
_AC = "runeworker.adapters.amqp_commit.x_commit__mutmut_"
_MT = "runeworker.engine.merge_timer."
_FL = "runeworker.engine.flow."
_WF = "runeworker.engine.workflow."
_CX = "runeworker.engine.context."
_KC = "runeworker.engine.known_contexts."
_KD = "runeworker.engine.known_definitions."
_NU = "runeworker.engine.nulls."
_RG = "runeworker.engine.registry."
_RS = "runeworker.adapters.redis_state.xǁRedisStoreǁ"
_MARKER = "any number of random bytes makes a marker no message holds by chance: the same outcome"
_PA = "runeworker.engine.paths."

_U64_NOTE = (
    "the two differ only for a significand starting 1844674407370955161 (u64::MAX's digits), "
    "whose numbers lie 2.6% above a power of ten times 1.7977, the edge of a double: far "
    "beyond the one rounding in which the two could differ"
)

EQUIVALENT: dict[str, Equivalent] = {
    # -- runeworker/engine/resolver.py --------------------------------------------------------
    _R + "x__parse_reference__mutmut_55": Equivalent(
        "if close <= 0:",
        "a '[' is at position 2 or later (after '$' and a name), so a ']' found after it is at "
        "3 or later: `close` is -1 or > 0, and `< 0`, `<= 0`, `< 1` agree",
    ),
    _R + "x__parse_reference__mutmut_56": Equivalent(
        "if close < 1:", "as x__parse_reference__mutmut_55: `close` is never 0"
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
    _R + "x__secret_strings__mutmut_12": Equivalent(
        'k.rsplit(".", )[-1]', "the last part of a dotted key is the same for any maxsplit"
    ),
    _R + "x__secret_strings__mutmut_15": Equivalent(
        'k.rsplit(".", 2)[-1]', "the last part of a dotted key is the same for any maxsplit"
    ),
    _R + "x_a_json_kind__mutmut_13": Equivalent(
        'name[0] in "XXaeiouXX"',
        "json_kind names are lower case: the added 'X' never matches their first letter",
    ),
    _R + "xǁResolverǁ_secrets__mutmut_20": Equivalent(
        "_MIN_SUBSTRING_SECRET), key=None)",
        "the order of the alternation matters only between secrets that match at the same "
        "place, i.e. one a prefix of the other; for those, sorting by text and by length agree "
        "(the longer one first after reversed())",
    ),
    _R + "xǁResolverǁ_secrets__mutmut_22": Equivalent(
        "_MIN_SUBSTRING_SECRET), )", "as xǁResolverǁ_secrets__mutmut_20"
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
    _R + "x__written_forms__mutmut_22": Equivalent(
        'quote(secret, safe="XXXX")',
        "quote() never escapes letters: X is safe with or without being named",
    ),
    _R + "x__written_forms__mutmut_30": Equivalent(
        'secret.encode("utf-8", )',
        "a credential value is a str decoded from JSON by msgspec, which holds no lone "
        "surrogate (depth.decode reads an escaped one as U+FFFD): the error handler is never used",
    ),
    _R + "x__written_forms__mutmut_32": Equivalent(
        'secret.encode("UTF-8", "surrogatepass")', "codec names are case-insensitive"
    ),
    _R + "x__written_forms__mutmut_33": Equivalent(
        'secret.encode("utf-8", "XXsurrogatepassXX")',
        "as x__written_forms__mutmut_30 (a handler is looked up only when an error occurs)",
    ),
    _R + "x__written_forms__mutmut_34": Equivalent(
        'secret.encode("utf-8", "SURROGATEPASS")', "as x__written_forms__mutmut_33"
    ),
    _R + "x__written_forms__mutmut_36": Equivalent(
        '.decode("LATIN-1")', "codec names are case-insensitive"
    ),
    _R + "x__written_forms__mutmut_37": Equivalent(
        "forms.discard(None)",
        "the forms join the secrets, which hold the secret itself already: the same set",
    ),
    _R + "xǁResolverǁ__init____mutmut_9": Equivalent(
        "self._masker = None",
        "_secrets() sets _NO_SECRETS on first use for a resolver without credentials or "
        "secrets: the shortcut only comes later",
    ),
    _R + "xǁResolverǁ_lookup__mutmut_1": Equivalent(
        "if len(ref) < KEPT_REFERENCE_CHARS:",
        "a reference of exactly KEPT_REFERENCE_CHARS is parsed without the cache: the same "
        "parse, uncached",
    ),
    _R + "xǁResolverǁ_unreadable_part__mutmut_9": Equivalent(
        "self._aliases.get(root, None)",
        "the default is read only for a root that is neither a context key nor an alias, "
        "and such a root was not found: no value of it was read in part",
    ),
    _R + "xǁResolverǁ_unreadable_part__mutmut_10": Equivalent(
        "self._aliases.get(root)", "as xǁResolverǁ_unreadable_part__mutmut_9"
    ),
    _R + "xǁResolverǁ_unreadable_part__mutmut_11": Equivalent(
        "self._aliases.get(root, )", "as xǁResolverǁ_unreadable_part__mutmut_9"
    ),
    _R + "xǁResolverǁused_inputs__mutmut_4": Equivalent(
        "keys = sorted(self.used_keys) if (keys is None) or True else keys",
        "a caller passes keys only as sorted(used_keys) (StatusBuilder.build): the same list",
    ),
    _R + "xǁResolverǁused_inputs__mutmut_10": Equivalent(
        "if (unreadable) or True else keys",
        "with no value unreadable the filter keeps every key present, and absent ones are "
        "left out on the next line anyway",
    ),
    _R + "xǁResolverǁ_published__mutmut_10": Equivalent(
        "kept = None",
        "the entry only spares a second look at the same bytes in the same state of reading (the "
        "running and the final status of one step): a look again gives the same answer",
    ),
    _R + "xǁResolverǁ_published__mutmut_11": Equivalent(
        "kept = self._stand_ins.get(None)",
        "as xǁResolverǁ_published__mutmut_10",
    ),
    _R + "xǁResolverǁ_published__mutmut_15": Equivalent(
        "if kept is None or kept[1] is not raw or",
        "kept[1] is a bool, never the bytes: every call looks again "
        "(xǁResolverǁ_published__mutmut_10)",
    ),
    _R + "xǁResolverǁ_published__mutmut_16": Equivalent(
        "if kept is None or kept[0] is raw or",
        "the bytes of a key do not change within a step (no node replaces a value it used): every "
        "call looks again, as xǁResolverǁ_published__mutmut_10",
    ),
    _R + "xǁResolverǁ_published__mutmut_17": Equivalent(
        "or kept[2] is not decoded:",
        "kept[2] is None or a stand-in, never the bool: every call looks again "
        "(xǁResolverǁ_published__mutmut_10)",
    ),
    _R + "xǁResolverǁ_decoded__mutmut_7": Equivalent(
        "kept = None",
        "as xǁResolverǁ_published__mutmut_10 (a decoded stand-in is the same each time)",
    ),
    _R + "xǁResolverǁ_decoded__mutmut_8": Equivalent(
        "kept = self._stand_ins.get(None)",
        "as xǁResolverǁ_decoded__mutmut_7",
    ),
    _R + "xǁResolverǁ_decoded__mutmut_11": Equivalent(
        "if kept is None or kept[1] is not raw:",
        "kept[1] is a bool, never the bytes: every call decodes again "
        "(xǁResolverǁ_decoded__mutmut_7)",
    ),
    _R + "xǁResolverǁ_decoded__mutmut_12": Equivalent(
        "if kept is None or kept[0] is raw:",
        "as xǁResolverǁ_published__mutmut_16",
    ),
    _R + "xǁResolverǁ_decoded__mutmut_14": Equivalent(
        "(raw, True, depth.published(raw, key))",
        "_decoded never reads the entry's second field",
    ),
    _R + "xǁResolverǁ_decoded__mutmut_16": Equivalent(
        "depth.published(raw, None))",
        "the name goes only into the errors, which depth.published catches and replaces",
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
    _S + "x_message_token__mutmut_4": Equivalent(
        "return root_token(None)",
        "root_token() names every execution's root `root` whatever execution it is given",
    ),
    _S + "x_record_arrival__mutmut_21": Equivalent(
        "store.retire(execution_id, a.hold, None, counted=False)",
        "the execution is open (admitted before): retire() hands now_ns to advance(), which "
        "reads it only to open one",
    ),
    _S + "x_record_arrival__mutmut_22": Equivalent(
        "store.retire(execution_id, a.hold, now_ns, counted=None)",
        "`counted` is read only for its truth (`if not counted`): None and False agree",
    ),
    _S + "x_record_arrival__mutmut_59": Equivalent(
        "store.retire(execution_id, m.timer_token, None)",
        "as x_record_arrival__mutmut_21",
    ),
    _S + "xǁ_Executionǁ__init____mutmut_8": Equivalent(
        "self.ended = None",
        "`ended` is read only for its truth (`not ex.ended`): None and False agree",
    ),
    _S + "xǁ_Executionǁ__init____mutmut_10": Equivalent(
        "self.lost = None",
        "`lost` is read for its truth, and returned or compared only once it is true (set with "
        '`lost_by`): None and "" agree',
    ),
    _S + "xǁ_Executionǁ__init____mutmut_12": Equivalent(
        "self.lost_by = None",
        "`lost_by` is read only once `lost` is true, and both are set together",
    ),
    _S + "xǁ_Executionǁ__init____mutmut_13": Equivalent(
        'self.lost_by = "XXXX"',
        "as xǁ_Executionǁ__init____mutmut_12",
    ),
    _S + "xǁMemoryStoreǁsettle__mutmut_29": Equivalent(
        "self.advance(execution_id, token, None, None, None, now_ns)",
        "a cancelled execution has its failure recorded, and advance() reads the children "
        "only while there is none",
    ),
    _S + "xǁMemoryStoreǁsettle__mutmut_30": Equivalent(
        "self.advance(execution_id, token, [], None, None, None)",
        "admit() just opened the execution; advance() reads now_ns only to open one",
    ),
    _S + "xǁMemoryStoreǁsettle__mutmut_47": Equivalent(
        "failure, None)",
        "admit() just opened the execution; advance() reads now_ns only to open one",
    ),
    _S + "xǁMemoryStoreǁarrive__mutmut_21": Equivalent(
        "self.advance(execution_id, token, None, None, None, now_ns)",
        "as xǁMemoryStoreǁsettle__mutmut_29: advance() reads the children only while the "
        "execution has no failure, and a cancelled one has",
    ),
    _S + "xǁMemoryStoreǁarrive__mutmut_22": Equivalent(
        "self.advance(execution_id, token, [], None, None, None)",
        "admit() just opened the execution; advance() reads now_ns only to open one",
    ),
    _S + "xǁMemoryStoreǁarrive__mutmut_44": Equivalent(
        "record_arrival(self, execution_id, token, verdict, None, arrival)",
        "record_arrival() reads now_ns only to hand it to retire(): as x_record_arrival__mutmut_21",
    ),
    _S + "xǁMemoryStoreǁarrive__mutmut_69": Equivalent(
        "self.advance(execution_id, token, children, None, None, None)",
        "admit() just opened the execution; advance() reads now_ns only to open one",
    ),
    _S + "xǁMemoryStoreǁretire__mutmut_13": Equivalent(
        "self.advance(execution_id, token, [], None, None, None)",
        "retire() found the execution open; advance() reads now_ns only to open one",
    ),
    _S + "xǁMemoryStoreǁ_lost__mutmut_20": Equivalent(
        "ex.live.add(None)",
        "the token that found its branches lost is added to the live set again by the "
        "`lost_by` path of its every later admission and advance, before anything reads "
        "whether it is live; meanwhile every other reader tests the live set only for being "
        "empty, which {None} and {token} agree on",
    ),
    _S + "xǁMemoryStoreǁadmit__mutmut_6": Equivalent(
        "return self._admission(execution_id, token, now_ns, anew, None)",
        "`failing` is read only for its truth (`not failing`): None and False agree",
    ),
    _S + "xǁMemoryStoreǁadvance__mutmut_5": Equivalent(
        "ex = self._open(execution_id, token, now_ns, None)",
        "`anew` is read only for its truth (opens_unknown's `or anew`): None and False agree",
    ),
    _S + "xǁStateStoreǁadmit__mutmut_1": Equivalent(
        "anew: bool = True) -> Admission:",
        "a default in the StateStore Protocol's own signature, whose body is `...` and is never "
        "run: MemoryStore and RedisStore declare their own",
    ),
    _S + "xǁStateStoreǁsettle__mutmut_1": Equivalent(
        "anew: bool = True,", "as xǁStateStoreǁadmit__mutmut_1"
    ),
    _S + "xǁStateStoreǁretire__mutmut_1": Equivalent(
        "counted: bool = False", "as xǁStateStoreǁadmit__mutmut_1"
    ),
    _S + "xǁStateStoreǁschedule__mutmut_1": Equivalent(
        'owner: str = "XXXX"', "as xǁStateStoreǁadmit__mutmut_1"
    ),
    # -- runeworker/engine/barriers.py --------------------------------------------------------
    _B + "xǁMemoryFlowǁmerge_arrive__mutmut_23": Equivalent(
        "return self._decided(m, state, None)",
        "a wait_for_any merge is decided by its first arrival with data and its data never "
        "changes after a decision: every other parent recorded is a ghost, which the result "
        "leaves out, so the winner alone and every parent give the same keys and results",
    ),
    _B + "xǁMemoryFlowǁmerge_arrive__mutmut_72": Equivalent(
        "return self._decided(m, BarrierState.RELEASED, None)",
        "as xǁMemoryFlowǁmerge_arrive__mutmut_23",
    ),
    _B + "xǁMemoryFlowǁ_decided__mutmut_9": Equivalent(
        "names = [winner] if (winner) and False else sorted(m.data)",
        "as xǁMemoryFlowǁmerge_arrive__mutmut_23",
    ),
    _B + "xǁMemoryFlowǁack_timer__mutmut_7": Equivalent(
        "self._payloads.pop(timer_id, )",
        "a lease is set only for a timer whose payload is stored (claim_due), and every removal "
        "of a payload (cancel_timer, ack_timer) removes its lease too: the payload of a lease "
        "popped is there, and pop() without a default never raises",
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
    _L + "xǁLedgerǁ__init____mutmut_1": Equivalent(
        "anew: bool = True,",
        "the default is never used: the one maker of ledgers, Turn.__init__ "
        "(engine/executor.py), passes anew by keyword",
    ),
    _L + "xǁ_Holdingǁ__init____mutmut_1": Equivalent(
        "anew: bool = True,", "as xǁLedgerǁ__init____mutmut_1"
    ),
    _L + "xǁArrivingǁ__init____mutmut_1": Equivalent(
        "anew: bool = True,", "as xǁLedgerǁ__init____mutmut_1"
    ),
    _L + "xǁArrivingǁ__init____mutmut_7": Equivalent(
        "super().__init__(store, msg, token, clock, max_steps, anew=None)",
        "an Arriving ledger never has anew: ledger.choose gives a replayed step (the only one "
        "Turn.__init__ makes with anew) the Admitted or Settled mode, and anew is read only "
        "for its truth",
    ),
    _L + "xǁArrivingǁ__init____mutmut_13": Equivalent(
        "super().__init__(store, msg, token, clock, max_steps, )",
        "as xǁArrivingǁ__init____mutmut_7: the default False is what every Arriving gets",
    ),
    _L + "xǁArrivingǁ__init____mutmut_14": Equivalent(
        'self._arrival: Arrival | None = ""',
        "read only by close() once `_arrived` is set, and arrive() sets both",
    ),
    _L + "xǁArrivingǁ__init____mutmut_16": Equivalent(
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
    _P + "xǁPlanǁmake__mutmut_1": Equivalent(
        "resumed: bool = True,",
        "the default is never used: the one caller, Executor.plan, passes resumed and "
        "replayed by keyword on every call",
    ),
    _P + "xǁPlanǁmake__mutmut_2": Equivalent("replayed: bool = True,", "as xǁPlanǁmake__mutmut_1"),
    _P + "xǁPlanǁmake__mutmut_24": Equivalent(
        "if error or wf is None and node is None:",
        "when wf or node is None, `error` is already non-empty: node is None whenever wf is, "
        "and a None node sets the 'not found' error two lines above",
    ),
    _P + "xǁPlanǁmake__mutmut_49": Equivalent(
        "Admitted, False, None, error, refused, replayed",
        "a plan with an error is rejected by Turn.take (engine/executor.py) before "
        "plan.resumed is read; Plan.failing keeps the error",
    ),
    # -- runeworker/engine/executor.py --------------------------------------------------------
    _E + "xǁTurnǁ__init____mutmut_33": Equivalent(
        "self.verdict = None",
        "Turn.take sets the verdict from the admission before anything reads it; a plan with "
        "an error goes to _reject, whose _close reads it only as 'CANCELLED?' (None is not, "
        "as RUN); report.verdict has its own default",
    ),
    _E + "x__resolver__mutmut_1": Equivalent(
        "if wf.by_id.get(None) is node:",
        "every node a step prepares is its definition's own object (Plan.make takes it from "
        "wf.by_id; the stand-in Node of a message that cannot run never gets a resolver), and "
        "wf.embedded holds embedded_credentials of each node's parameters: both branches give "
        "the same blocks",
    ),
    _E + "x__resolver__mutmut_2": Equivalent(
        "if wf.by_id.get(node.id) is not node:", "as x__resolver__mutmut_1"
    ),
    _E + "x__resolver__mutmut_8": Equivalent(
        "secrets = None",
        "the branch runs only for a node that is not its definition's own object, which no "
        "step prepares (x__resolver__mutmut_1)",
    ),
    _E + "x__resolver__mutmut_9": Equivalent(
        "secrets = embedded_credentials(None)", "as x__resolver__mutmut_8"
    ),
    _E + "xǁTurnǁ_prepare__mutmut_8": Equivalent(
        "self.ctx = ctx if (isinstance(ctx, LazyContext)) and False else lazy(ctx)",
        "lazy() of a LazyContext is its copy (runeworker/engine/context.py), holding the same "
        "values, raw or decoded; nothing of a step writes to the message's own context",
    ),
    _E + "xǁTurnǁ_run__mutmut_51": Equivalent(
        "credentials=_credentials(node, with_type=True) if (node.credentials) or True else {},",
        "_credentials answers {} for a node without credentials, and a node's credentials "
        "(a msgspec Struct) are always true",
    ),
    _E + "xǁTurnǁ_cancelled__mutmut_17": Equivalent(
        "self._close(Ending(absorbed=None))",
        "_close reads `absorbed` only to decide on a leaf, and passes none for a CANCELLED "
        "verdict, which _cancelled has just set",
    ),
    _E + "xǁTurnǁ_cancelled__mutmut_18": Equivalent(
        "self._close(Ending(absorbed=False))", "as xǁTurnǁ_cancelled__mutmut_17"
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
    _E + "xǁTurnǁ_take__mutmut_24": Equivalent(
        "self._close(Ending(absorbed=None))",
        "as xǁTurnǁ_merge_timer__mutmut_28 (a stray ghost's Ending has the default context {}; "
        "for a CANCELLED verdict _close passes no leaf at all)",
    ),
    _E + "xǁTurnǁ_take__mutmut_25": Equivalent(
        "self._close(Ending(absorbed=False))", "as xǁTurnǁ_take__mutmut_24"
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
    _O + "x__whole__mutmut_4": Equivalent(
        "whole = None",
        "decoding a context whole is a shortcut: without it completion() decodes the same "
        "context value by value, which gives the same values (a context whose values all nest "
        "shallowly enough has no placeholder either way)",
    ),
    _O + "x__whole__mutmut_6": Equivalent(
        "return whole if (isinstance(whole, dict)) and False else None", "as x__whole__mutmut_4"
    ),
    _O + "x_completion__mutmut_21": Equivalent("whole = None", "as x__whole__mutmut_4"),
    _O + "x__kept__mutmut_6": Equivalent(
        "if len(raw) <= _WHOLE_CHECK_BYTES and depth.context_publishable(raw):",
        "one more size takes the shortcut of one check of the whole text, whose verdict the "
        "value-by-value check gives as well: the same final context",
    ),
    _O + "x_completion__mutmut_31": Equivalent(
        "depth.published(v, None)",
        "the name goes only into the errors, which depth.published catches and replaces",
    ),
    _O + "x_completion__mutmut_34": Equivalent(
        'depth.published(v, "XXvalueXX")', "as x_completion__mutmut_31"
    ),
    _O + "x_completion__mutmut_35": Equivalent(
        'depth.published(v, "VALUE")', "as x_completion__mutmut_31"
    ),
    _O + "x_completion__mutmut_38": Equivalent(
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
    _D + "x_number_problem__mutmut_22": Equivalent(
        "misread = rtes or _MISREAD_BYTES in data",
        "more texts are decoded and, with rtes, located by _located, which finds exactly the "
        "numbers refused: the same answer, at a cost",
    ),
    _D + "x_number_problem__mutmut_40": Equivalent(
        "if ints or out_of_range(value):",
        "without a run of 309 digits out_of_range finds nothing (no int past 2^1023 is shorter)",
    ),
    _D + "x_number_problem__mutmut_46": Equivalent(
        "if rtes or (ints or misread or _LONG_RUN in shapes",
        "without rtes, _located of a text msgspec decoded finds nothing (it would have failed): "
        "the same answer, later",
    ),
    _D + "x_number_problem__mutmut_55": Equivalent(
        "_large_exponent(data, shapes, )):",
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
    # -- runeworker/engine/depth.py (the older fast paths, judged in an eighteenth session) ----
    _D + "x__large_exponent__mutmut_10": Equivalent(
        "looks += 2",
        "past 16 looks instead of 32 the search answers True: _large_exponent answering True "
        "sends the text to the decoder, which tells exactly: a look that answers True sooner or"
        " more often changes the cost, never the verdict",
    ),
    _D + "x__large_exponent__mutmut_13": Equivalent(
        "looks >= most:",
        "as x__large_exponent__mutmut_10 (one look sooner)",
    ),
    _D + "x__large_exponent__mutmut_2": Equivalent(
        "looks = 1",
        "as x__large_exponent__mutmut_10 (one look sooner)",
    ),
    _D + "x__large_exponent__mutmut_8": Equivalent(
        "looks = 1",
        "looks never passes `most`: every shape is looked at, each look exact; only the cost grows",
    ),
    _D + "x__large_exponent__mutmut_9": Equivalent(
        "looks -= 1",
        "as x__large_exponent__mutmut_8",
    ),
    _D + "x__large_exponent__mutmut_31": Equivalent(
        "or (end == len(data) or data[end] in _AFTER_VALUE)):",
        "the look answers True for more shapes: _large_exponent answering True sends the text "
        "to the decoder, which tells exactly: a look that answers True sooner or more often "
        "changes the cost, never the verdict",
    ),
    _D + "x__large_exponent__mutmut_32": Equivalent(
        "if (start < at or (not start",
        "as x__large_exponent__mutmut_31",
    ),
    _D + "x__large_exponent__mutmut_33": Equivalent(
        "if (start <= at and",
        "as x__large_exponent__mutmut_31 (an exponent with no mantissa before it)",
    ),
    _D + "x__large_exponent__mutmut_51": Equivalent(
        "return True",
        "as x__large_exponent__mutmut_31 (every text is looked at by the decoder)",
    ),
    _D + "x__large_exponent__mutmut_50": Equivalent(
        "at = shapes.find(exponent, at + 2)",
        "two matches of `e000` or `e+000` cannot start one byte apart (the byte after `e` is "
        "`0` or `+`, never `e`): nothing is skipped",
    ),
    _D + "x__large_exponent__mutmut_6": Equivalent(
        "while at > 0:",
        "a match at byte 0 has no mantissa before it (start == at), which the look rejects anyway",
    ),
    _D + "x__large_exponent__mutmut_7": Equivalent(
        "while at >= 1:",
        "as x__large_exponent__mutmut_6",
    ),
    _D + "x__located__mutmut_1": Equivalent(
        "def _located(data: bytes, rtes: bool = True) -> str:",
        "every caller passes rtes (number_problem's three calls)",
    ),
    _D + "x__scanned__mutmut_1": Equivalent(
        "def _scanned(data: bytes, rtes: bool = True) -> str:",
        "its one caller (_located) passes rtes",
    ),
    _D + "x__number__mutmut_5": Equivalent(
        "_refused(token, None)",
        "_refused reads rtes for its truth: None is False",
    ),
    _D + "x__number__mutmut_9": Equivalent(
        "else 1  # its value does not matter",
        "the stand-in of a number that is not refused is never looked at, only whether it is _Out",
    ),
    _D + "x__replacement_character__mutmut_10": Equivalent(
        'rb"\\uFFFD"',
        "the same escape in upper-case hex: decoded, the same character",
    ),
    _D + "x__scanned__mutmut_16": Equivalent(
        'decode("ASCII")',
        "codec names are case-insensitive",
    ),
    _D + "x__scanned__mutmut_4": Equivalent(
        "if (b'\"' in data) or True else data",
        "substituting strings in a text without quotes changes nothing",
    ),
    _D + "x__scanned__mutmut_9": Equivalent(
        "_STRING.sub(b'XX\"\"XX', data)",
        "X is no byte of a number (`_NUMBER`): a string's stand-in only has to keep numbers "
        "apart, and both do",
    ),
    _D + "x__unpublishable__mutmut_14": Equivalent(
        'data.translate(_FIRST_LOOK, b"XX+XX")',
        "deleting X as well only joins what stood around it: the brackets are counted the same,"
        " an `e000` can only appear, and a run of digits only grows, so the quick look answers "
        "'look closer' as often or more",
    ),
    _D + "x__unpublishable__mutmut_17": Equivalent(
        "if len(data) >= 2 * limit + 1 and",
        "nesting limit + 1 levels takes 2 * limit + 2 bytes: at 2 * limit + 1 json_exceeds "
        "answers False",
    ),
    _D + "x__unpublishable__mutmut_18": Equivalent(
        "if len(data) > 2 * limit - 1 and",
        "as x__unpublishable__mutmut_17 (shorter texts go to json_exceeds, which answers False)",
    ),
    _D + "x__unpublishable__mutmut_19": Equivalent(
        "if len(data) > 2 / limit + 1 and",
        "as x__unpublishable__mutmut_18",
    ),
    _D + "x__unpublishable__mutmut_24": Equivalent(
        'shapes.count(b"[") >= limit and',
        "with exactly `limit` opening brackets nothing nests deeper than limit: json_exceeds "
        "answers False",
    ),
    _D + "x__unpublishable__mutmut_2": Equivalent(
        "data = raw if (type(raw) is bytes) and False else bytes(raw)",
        "bytes(raw) of bytes is an equal copy",
    ),
    _D + "x__unpublishable__mutmut_4": Equivalent(
        "data = raw if type(None) is bytes else bytes(raw)",
        "as x__unpublishable__mutmut_2",
    ),
    _D + "x_decode__mutmut_12": Equivalent(
        'raw.encode("utf-8", )',
        "a str holding a surrogate character never gets here: msgspec raises UnicodeEncodeError"
        " for it before any DecodeError, so the error handler is never used",
    ),
    _D + "x_decode__mutmut_14": Equivalent(
        'raw.encode("UTF-8", "surrogatepass")',
        "codec names are case-insensitive",
    ),
    _D + "x_decode__mutmut_15": Equivalent(
        'raw.encode("utf-8", "XXsurrogatepassXX")',
        "as x_decode__mutmut_12 (an error handler is looked up only when an error occurs)",
    ),
    _D + "x_decode__mutmut_16": Equivalent(
        'raw.encode("utf-8", "SURROGATEPASS")',
        "as x_decode__mutmut_15",
    ),
    _D + "x_decode__mutmut_26": Equivalent(
        "if len(raw) >= INT_DIGITS or holds_int_run(raw):",
        "out_of_range finds nothing in a text without a run of 309 digits, and "
        "_overshot_as_floats changes nothing there: the same value, at a cost",
    ),
    _D + "x_exceeds__mutmut_3": Equivalent(
        "return json_exceeds(None)",
        "len(None) raises TypeError, which `exceeds` catches and answers by the explicit walk: "
        "the same answer",
    ),
    _D + "x_holds_int_run__mutmut_11": Equivalent(
        'raw.encode("UTF-8", "surrogatepass")',
        "codec names are case-insensitive",
    ),
    _D + "x_number_problem__mutmut_10": Equivalent(
        'raw.encode("UTF-8", "surrogatepass")',
        "codec names are case-insensitive",
    ),
    _D + "x_json_exceeds__mutmut_1": Equivalent(
        "if len(raw) < (_SHALLOW_BYTES",
        "a text of exactly 2 * limit + 1 bytes cannot nest limit + 1 levels (2 * limit + 2 "
        "brackets): the rest answers False",
    ),
    _D + "x_json_exceeds__mutmut_5": Equivalent(
        "else 2 * limit - 1):",
        "as x_json_exceeds__mutmut_1 (shorter texts go on, and are answered False)",
    ),
    _D + "x_json_exceeds__mutmut_6": Equivalent(
        "else 2 / limit + 1):",
        "as x_json_exceeds__mutmut_5",
    ),
    _D + "x_json_exceeds__mutmut_2": Equivalent(
        "(limit == MAX_DEPTH) and False else",
        "_SHALLOW_BYTES is 2 * MAX_DEPTH + 1: both branches give the same bound",
    ),
    _D + "x_json_exceeds__mutmut_19": Equivalent(
        'data.count(b"{") < limit:',
        "with exactly `limit` brackets nothing nests deeper than limit: the rounds answer False",
    ),
    _D + "x_json_exceeds__mutmut_33": Equivalent(
        'data.replace(b"\\\\\\\\", b"XXXX")',
        "the letters go with the translation that follows: XXXX is removed as the empty string is",
    ),
    _D + "x_json_exceeds__mutmut_35": Equivalent(
        'replace(b\'\\\\"\', b"XXXX")',
        "as x_json_exceeds__mutmut_33",
    ),
    _D + "x_json_exceeds__mutmut_44": Equivalent(
        'replace(b"XX\\\\XX", b"")',
        "backslashes left in the structure lie inside strings (between two quotes), which the "
        "next lines remove whole, backslashes and all",
    ),
    _D + "x_json_exceeds__mutmut_45": Equivalent(
        'replace(b"\\\\", b"XXXX")',
        "as x_json_exceeds__mutmut_44 (the X's lie inside strings too)",
    ),
    _D + "x_json_exceeds__mutmut_51": Equivalent(
        'structure.replace(b\'XX""XX\', b"")',
        'the empty strings and the joins of adjacent strings that the `""` replacement takes '
        "out are taken out by _QUOTED just after",
    ),
    _D + "x_json_exceeds__mutmut_86": Equivalent(
        "return 3 * rounds > limit and",
        "more texts get the exact count (_levels_exceed): the same answer",
    ),
    _D + "x_json_exceeds__mutmut_87": Equivalent(
        "return 2 * rounds >= limit and",
        "as x_json_exceeds__mutmut_86",
    ),
    _D + "x_unpublishable__mutmut_1": Equivalent(
        "keep: bool = True) -> Any:",
        "a text's verdict kept is the verdict it would get again (the key is its length, a "
        "salted hash and the limit)",
    ),
    _D + "x_unpublishable__mutmut_14": Equivalent(
        "if len(_verdicts) > _REMEMBERED_MAX:",
        "the memo is cleared one verdict later: it stays bounded, and a verdict is the same "
        "kept or not",
    ),
    _D + "x_unpublishable__mutmut_2": Equivalent(
        "if len(raw) < _REMEMBERED_BYTES or not keep:",
        "as x_unpublishable__mutmut_1 (which texts are kept changes the cost only)",
    ),
    _D + "x_unpublishable__mutmut_3": Equivalent(
        "if len(raw) <= _REMEMBERED_BYTES and not keep:",
        "as x_unpublishable__mutmut_2",
    ),
    _D + "x_unpublishable__mutmut_4": Equivalent(
        "if len(raw) < _REMEMBERED_BYTES and keep:",
        "as x_unpublishable__mutmut_2",
    ),
    # -- runeworker/adapters/amqp_frames.py ---------------------------------------------------
    _F + "x__join_sends__mutmut_10": Equivalent(
        'transport, "_runeworker_joins", None', "None and False are both false: not joined yet"
    ),
    _F + "x__join_sends__mutmut_19": Equivalent(
        "if len(buffers) >= 1:", "one buffer joined is the same one buffer"
    ),
    _FW + "_header__mutmut_9": Equivalent(
        "frame.Header(self._number, 1, props)",
        "the body size written in the marshalled header is the part `_split` cuts out (each "
        "publish packs its own)",
    ),
    _FW + "_header__mutmut_23": Equivalent(
        "frame.Header(self._number, 1, props)", "as _header__mutmut_9, for the kept header"
    ),
    _FW + "publish__mutmut_27": Equivalent(
        "if (size > step) and False else body",
        "the frames of a long body cut from the bytes instead of a memoryview: the same bytes "
        "joined (a copy more)",
    ),
    _FW + "publish__mutmut_28": Equivalent(
        "if (size > step) or True else body",
        "a short body cut from a memoryview: the same bytes joined",
    ),
    _FW + "publish__mutmut_30": Equivalent(
        "if size >= step else body", "a body of exactly one frame cut from a memoryview: the same"
    ),
    # -- runeworker/adapters/amqp_reader.py ---------------------------------------------------
    _AR + "__init____mutmut_9": Equivalent(
        "self.awaiting_commit = None", "None is false as False is: no commit waits"
    ),
    _AR + "__init____mutmut_13": Equivalent(
        "connection._frame_buffer = None",
        "once the reader takes `_on_data_available`, nothing of pika reads `_frame_buffer` (only "
        "its `_on_data_available` and `_read_frame` do)",
    ),
    _AR + "__init____mutmut_14": Equivalent(
        'connection._frame_buffer = b"XXXX"', "as __init____mutmut_13"
    ),
    **_alike(
        _AR + "_delivery__mutmut_",
        _PIKAS,
        dict.fromkeys((29, 41, 63, 73, 83, 103, 113, 135), "return -2"),
    ),
    _AR + "_delivery__mutmut_25": Equivalent(
        "or exchange > payload_end",
        "at exchange == payload_end the byte there is the frame end (0xCE, checked by "
        "`on_data`): the routing key is then 207 bytes on, and its check leaves it to pika",
    ),
    _AR + "_delivery__mutmut_35": Equivalent(
        "if routing_key > payload_end or",
        "at routing_key == payload_end its length byte is the frame end (0xCE): the second "
        "check leaves it to pika",
    ),
    _AR + "_delivery__mutmut_90": Equivalent(
        "if size - at <= _FRAME_OVERHEAD:",
        "with exactly 8 bytes left the buffer ends in a frame with no payload: an empty body "
        "frame cannot end the body (more must come, and it is read then), any other is left to "
        "pika once the next bytes come instead of now (the bytes are counted as they come)",
    ),
    _AR + "on_data__mutmut_12": Equivalent("delivered = None", "None is false as False is"),
    _AR + "on_data__mutmut_60": Equivalent(
        "if taken > 1:", "a delivery read ends at least three whole frames past `pos`"
    ),
    _AR + "on_data__mutmut_77": Equivalent(
        "self.awaiting_commit = None", "None is false as False is: the commit's wait ends"
    ),
    _AR + "on_data__mutmut_87": Equivalent(
        "if pos > size:",
        "at pos == size the other branches keep an empty rest as well (`del rest[:pos]`, or a "
        "new empty bytearray)",
    ),
    # -- runeworker/adapters/amqp_commit.py ---------------------------------------------------
    **_alike(
        _AC,
        "pika reads `_blocking` only as true or false (and names it in debug logs): any "
        "method name that is not empty holds the channel's other RPCs the same",
        {
            8: 'impl._blocking = "XXTx.CommitXX"',
            9: 'impl._blocking = "tx.commit"',
            10: 'impl._blocking = "TX.COMMIT"',
        },
    ),
    _AC + "16": Equivalent(
        "reader.awaiting_commit = None", "None is false as False is: no commit waits"
    ),
    # -- runeworker/engine/merge_timer.py -----------------------------------------------------
    _MT + "x_in_arrival__mutmut_1": Equivalent(
        "context_bytes: int = 1,",
        "the default only says the size is not known: 0 and 1 are both far below the limit",
    ),
    **_alike(
        _MT + "x_timer_of__mutmut_",
        "the token is any value derived from the timer id alone: each of these derivations is "
        "the same for one barrier and differs between barriers, as the timer id does",
        {
            11: '"merge-timer:" + timer_id, None, merge_id',
            12: '"merge-timer:" + timer_id, 0, None',
            17: 'child_token("XXmerge-timer:XX" + timer_id',
            18: 'child_token("MERGE-TIMER:" +',
            19: '"merge-timer:" + timer_id, 1, merge_id',
        },
    ),
    **_alike(
        _MT + "x_fire__mutmut_",
        "a firing timer finds its barrier waiting since a first arrival (it is armed by one): "
        "its arrival at _FIRED_MS is past any timeout of 1 or 2 ms and expires the barrier "
        "before its rule's `expected` and `any` or its data are read; a barrier decided or "
        "gone (StateLost, TIMER_PARENT) is told before they are read too",
        {
            18: "MergeRule(expected=1 << 30, timeout_ms=1)",
            20: "expected=1 >> 30",
            21: "expected=2 << 30",
            22: "expected=1 << 31",
            23: "any=True, timeout_ms=1",
            24: "any=False, timeout_ms=2)",
            42: 'b"XXnullXX"',
            43: 'b"NULL"',
        },
    ),
    _MT + "x_fire__mutmut_47": Equivalent(
        "or 2",
        "a timer is armed only by an arrival from one of the merge's parents: `merge_parents` "
        "is never empty where it fires",
    ),
    # -- runeworker/engine/messages.py ---------------------------------------------------------
    **_alike(
        _M + "x__decode__mutmut_",
        _KNOWN_DEFINITION,
        {
            1: "if type(None) is bytes:",
            2: "if type(data) is not bytes:",
            3: "known = None",
        },
    ),
    **_alike(
        _M + "x_decode_execution__mutmut_",
        _KNOWN_CONTEXT,
        {
            3: "_contexts.min_bytes) or True else None",
            4: "raw = data if type(data) is bytes or len(data)",
            7: "len(data) > _contexts.min_bytes else None",
        },
    ),
    **_alike(
        _M + "x_decode_execution__mutmut_",
        _UTF8_CHECKED,
        {
            16: "seen = None",
            48: "ascii_only = None",
            49: "ascii_only = seen and",
            51: "if (ascii_only) and False else",
        },
    ),
    _M + "x_decode_execution__mutmut_58": Equivalent('str(value, "UTF-8")', _CODEC_CASE),
    _M + "x__utf8__mutmut_4": Equivalent('data.decode("UTF-8")', _CODEC_CASE),
    _M + "x__decode_problem__mutmut_9": Equivalent(
        'data.encode("UTF-8", "surrogatepass")', _CODEC_CASE
    ),
    _M + "x__decode_problem__mutmut_21": Equivalent('decode("ASCII")', _CODEC_CASE),
    **_alike(
        _M + "x__decode_problem__mutmut_",
        _NEVER_ERRS,
        {
            7: 'data.encode("utf-8", )',
            10: '"XXsurrogatepassXX"',
            11: '"SURROGATEPASS"',
        },
    ),
    **_alike(
        _M + "x__mask_credentials__mutmut_",
        _MASK_PASS,
        {
            3: "nodes = None",
            4: "if (isinstance(definition, dict)) and False else None",
            5: "if (isinstance(definition, dict)) or True else None",
            6: "definition.get(None) if",
            7: 'definition.get("XXnodesXX")',
            8: 'definition.get("NODES")',
            9: "if (isinstance(nodes, list)) and False else ()",
            11: "if isinstance(n, dict):",
            12: "break",
            13: "credential_holders(None)",
            14: "credential_holders(n.get(None))",
            15: 'n.get("XXparametersXX")',
            16: 'n.get("PARAMETERS")',
            17: "if holder.get(None) is not None:",
            18: 'holder.get("XXcredentialsXX")',
            19: 'holder.get("CREDENTIALS")',
            27: "held = 1",
            30: "if held > written:",
            32: "masked = 1",
            45: "masked = 1",
            47: "masked += 2",
        },
    ),
    **_alike(
        _M + "x_masked_mirror__mutmut_",
        "a definition's verdict is kept or found again: the same verdict",
        {
            11: "keep=None) is not None",
            14: "RTES_DEPTH - 1, ) is not None",
            17: "keep=False) is not None",
        },
    ),
    _M + "x_masked_mirror__mutmut_32": Equivalent(
        "written = sys.maxsize if (escaped) or True else", _MASK_PASS
    ),
    **_alike(
        _M + "x_masked_mirror__mutmut_",
        (
            "a definition that passed the message's decode (msgspec checks a Raw's "
            "escapes), the UTF-8 check and the depth and number checks decodes: the "
            "fallback is defensive"
        ),
        {
            27: "definition, raw = None",
            28: 'None, b"XX{}XX"',
        },
    ),
    _M + "x_rfc3339__mutmut_10": Equivalent(
        "if last[1] != secs:",
        "the seconds formatted again at every call (the kept string never equals the "
        "number): the same text",
    ),
    # -- runeworker/child/receipts.py, doubts.py, scheduler.py -----------------------------------
    _RC + "xǁParkingǁ__init____mutmut_5": Equivalent(
        "self._count = 1",
        "the count only orders deliveries parked for the same instant and the drain: any "
        "strictly increasing sequence orders them alike",
    ),
    _RC + "xǁParkingǁpark__mutmut_12": Equivalent(
        "self._count += 2", "as xǁParkingǁ__init____mutmut_5"
    ),
    _DB + "xǁResenderǁsettle_before_exit__mutmut_2": Equivalent(
        'error: Exception | None = ""',
        "its one caller (Worker._drain) tries 3 times: every failed try sets `error` before "
        "the message that shows it",
    ),
    _SC + "xǁHostLockǁ__init____mutmut_3": Equivalent(
        "self._warned = None", "None is false as False is: the first failure is told"
    ),
    _SC + "xǁHostLockǁacquire__mutmut_26": Equivalent(
        "self._warned = None", "as xǁHostLockǁ__init____mutmut_3, after a success"
    ),
    # -- runeworker/engine/flow.py ---------------------------------------------------------------
    **_alike(
        _FL + "x__aggregate__mutmut_",
        "`hold` is read only on the WAITING path, which only a split with items reaches, where "
        "it is set again; with no items the barrier is RELEASED at once",
        {12: "hold = None", 13: 'hold = "XXXX"'},
    ),
    **_alike(
        _FL + "x__aggregate__mutmut_",
        "the released path reads the barrier's results and the split's `total`, never `arrived`",
        {18: "Barrier(BarrierState.RELEASED, None)", 21: "Barrier(BarrierState.RELEASED, 1)"},
    ),
    **{
        _FL + name: Equivalent(
            line,
            "the output is read only by a router (conditional, switch, `NodeSpec.router`): "
            "split, aggregator, merge and wait have none, so `_edges` gives their normal edges",
        )
        for name, line in (
            ("x__aggregate__mutmut_145", "_edges(step, spec, None), ctx, outer"),
            ("x__merged__mutmut_60", "route(step, _edges(step, spec, None), ctx)"),
            ("x_resumed__mutmut_20", "route(step, _edges(step, spec, None), step.context)"),
            ("x__split__mutmut_17", "edges = _edges(step, spec, None)"),
        )
    },
    **_alike(
        _FL + "x__aggregate__mutmut_",
        "a waiting arrival always names the hold token as `park`, which keeps the branch from "
        "being a leaf whatever `absorbed` says (`Turn._close`, goes_on)",
        {
            80: "Ending(absorbed=None, park=hold)",
            82: "Ending(park=hold)",
            84: "Ending(absorbed=False, park=hold)",
        },
    ),
    **_alike(
        _FL + "x__branch_result__mutmut_",
        '`from_node` is a string or UNSET (the message\'s type): UNSET, "" and "XXXX" all '
        "name no node, so the branch delivers its `$item`",
        {3: "isinstance(step.msg.from_node, str)) or True", 4: 'else "XXXX"'},
    ),
    _FL + "x__merge__mutmut_4": Equivalent(
        "isinstance(step.msg.from_node, str)) or True",
        '`from_node` is a string or UNSET (the message\'s type): UNSET is false as "" is, '
        "the same error follows",
    ),
    _FL + "x__merge__mutmut_112": Equivalent(
        'else "XXXX", park',
        "the timer token of a merge without a timer: a token no branch holds, which retiring "
        "(`StateStore.retire`) records as advanced without counting a step or closing anything",
    ),
    **_alike(
        _FL + "x__merge__mutmut_",
        "`foreseen` only spares a store call: an outcome not foreseen is advanced by the "
        "ledger's `close` with the same children ([] for these), so the step publishes the same",
        {
            115: "foreseen[BarrierState.WAITING] = None",
            116: "if halts(node, step.wf):",
            121: "foreseen[BarrierState.TIMED_OUT] = None",
        },
    ),
    **_alike(
        _FL + "x__merge__mutmut_",
        '`Ending.park` is read as true or false (`Turn._close`): None and "" alike',
        {160: "next(iter(parked(arrival, barrier)), None)", 191: "held = None"},
    ),
    **_alike(
        _FL + "x__merge__mutmut_",
        "`merge_timer.park` only compares `now` with the due time; the one arrival that can "
        "wait past it is a ghost (an arrival with data would expire the barrier), at a barrier "
        "whose timer has not decided it yet: scheduling that timer again (same id, same due "
        "time) and parking its token (live already) changes nothing; a replayed arrival's "
        "advance is the one recorded, whatever it parks",
        {
            172: "step.now_ns / 1_000_000",
            173: "step.now_ns // 1000001",
        },
    ),
    **_alike(
        _FL + "x__merge__mutmut_",
        "a cancelled ending publishes nothing of the step: `Turn._cancelled` closes the token "
        "with an absorbed ending of its own and reads neither this output nor `absorbed`",
        {
            210: "Outcome(None, Ending(absorbed=True, cancelled=True))",
            214: '{"XX_merge_ignoredXX": True}, Ending(absorbed=True, cancelled=True)',
            215: '{"_MERGE_IGNORED": True}, Ending(absorbed=True, cancelled=True)',
            216: '{"_merge_ignored": False}, Ending(absorbed=True, cancelled=True)',
            217: "Ending(absorbed=None, cancelled=True)",
            219: '{"_merge_ignored": True}, Ending(cancelled=True)',
            221: "Ending(absorbed=False, cancelled=True)",
        },
    ),
    **_alike(
        _FL + "x__merge__mutmut_",
        "the merge node's settings always hold a positive `timeout` (runeworker/nodes/merge.py: "
        "missing, zero or negative mean 300 s), so `timeout_ms` is at least 1",
        {
            22: 'settings.get("timeout", None)',
            24: 'settings.get("timeout", )',
            27: 'settings.get("timeout", 1)',
            37: "if (timeout > 0) or True else 0",
            46: "if timeout >= 0 else 0",
            48: "if timeout > 0 else 1",
            72: "if timeout_ms >= 0 and not wait_any",
        },
    ),
    **_alike(
        _FL + "x__merge__mutmut_",
        "the context's size only spares encoding a resume message known to be over the limit "
        "(`merge_timer.in_arrival`): without it, or 1 for a ghost's, the message is encoded "
        "and measured, with the same outcome",
        {
            85: "step.store, timer, step.msg, step.context, )",
            86: "if (payload is not None) and False else 0",
            89: "if payload is not None else 1",
        },
    ),
    **_alike(
        _FL + "x__merged__mutmut_",
        "a released barrier's keys and results pair up one to one (`Barrier`)",
        {
            10: "zip(barrier.keys, barrier.results, strict=None)",
            13: "zip(barrier.keys, barrier.results, )",
            14: "zip(barrier.keys, barrier.results, strict=False)",
        },
    ),
    **_alike(
        _FL + "x__merged__mutmut_",
        "a key has no rank only when the merge has no incoming edge (an arrival from any other "
        "node is refused), and then it expects one arrival: one key, nothing to order",
        {
            17: "rank.get(kv[0], None), kv[0]",
            19: "rank.get(kv[0], ), kv[0]",
            21: "rank.get(kv[0], len(rank)), kv[1]",
        },
    ),
    _FL + "x__outer_context__mutmut_6": Equivalent(
        "split_scope(wf, top.split_node_id, None)",
        "the nodes past the aggregator have not run in a branch that has not reached it (the "
        "graph is acyclic): popping their keys as well changes nothing",
    ),
    **_alike(
        _FL + "x__split__mutmut_",
        "a split with items and edges publishes its branches: its ending's context is never a leaf",
        {123: "Ending(emits, None)", 125: "Ending(emits, )"},
    ),
    **_alike(
        _FL + "x__split__mutmut_",
        "the empty split's ending is absorbed: its context is never a leaf",
        {78: "Ending([empty], None, absorbed=True)", 81: "Ending([empty], absorbed=True)"},
    ),
    **_alike(
        _FL + "x__split__mutmut_",
        "the ghost goes straight to the aggregator, with no node in between to change `$json` "
        "or `$error`: the values the aggregator would restore from `outer_keys` are the ones "
        "its context has",
        {65: "ghost=True, outer_keys=None)", 71: "ghost=True, )"},
    ),
    **_alike(
        _FL + "x__split__mutmut_",
        "unreachable: the split node always outputs `_split_items` as a list "
        "(runeworker/nodes/split.py)",
        {6: "raise NodeError(None)"},
    ),
    **_alike(
        _FL + "x__wait__mutmut_",
        "unreachable: the wait node's `resume_at` is an int, never a bool "
        "(runeworker/nodes/wait.py)",
        {5: "isinstance(resume_at, bool) and not", 7: "raise NodeError(None)"},
    ),
    _FL + "x__wait__mutmut_42": Equivalent(
        "-current_node=step.node.id,",
        "a wait's step runs at the wait: the message's current_node is the wait already",
    ),
    **_alike(
        _FL + "x__wait__mutmut_",
        "the parked token keeps the branch from being a leaf: the ending's context is never read",
        {63: "Ending(context=None, park=park)", 65: "Ending(park=park)"},
    ),
    **_alike(
        _FL + "x_on_error__mutmut_",
        "a ghost's ending has the default context {}: as a leaf it adds nothing to any final "
        "context",
        {17: "Ending(absorbed=None)", 18: "Ending(absorbed=False)"},
    ),
    **_alike(
        _FL + "x__unadmitted__mutmut_",
        "an unadmitted ending is closed as the ledger says (`Turn._execute`): its output and "
        "`absorbed` are never read, and a step that took it for an admitted one would publish "
        "the same (the ledger's close finds the token stale or cancelled and clears the "
        "statuses, or the execution at its limit and retakes the step as failed there)",
        {
            1: "Outcome(None, Ending(absorbed=True, unadmitted=True))",
            5: "Ending(absorbed=None, unadmitted=True)",
            6: "Ending(absorbed=True, unadmitted=None)",
            7: "Ending(unadmitted=True)",
            8: "Ending(absorbed=True, )",
            9: "Ending(absorbed=False, unadmitted=True)",
            10: "Ending(absorbed=True, unadmitted=False)",
        },
    ),
    _FL + "xǁStepǁarrive__mutmut_7": Equivalent(
        "record_arrival(self.store, ex, token, verdict, None, arrival)",
        "the time is read only by the retiring of a decided merge's timer token, an advance "
        "that never closes the execution (its own arrival's token is still live): no "
        "transition with a time is published from it",
    ),
    # -- runeworker/engine/paths.py --------------------------------------------------------------
    **{
        _PA + name: Equivalent(
            line,
            "walks are kept only to spare walking again (`Workflow.walks`): a key no read "
            "finds, a read that finds nothing, or a key another kind of walk never uses gives "
            "the walked answer every time",
        )
        for name, line in (
            ("x_aggregator_of__mutmut_2", "wf.walks.get(None, _UNKNOWN)"),
            ("x_aggregator_of__mutmut_6", 'wf.walks.get(("XXaggregatorXX", split_id), _UNKNOWN)'),
            ("x_aggregator_of__mutmut_7", 'wf.walks.get(("AGGREGATOR", split_id), _UNKNOWN)'),
            ("x_aggregator_of__mutmut_16", '_kept(wf, ("XXaggregatorXX", split_id)'),
            ("x_aggregator_of__mutmut_17", '_kept(wf, ("AGGREGATOR", split_id)'),
            ("x_dead_paths__mutmut_22", 'key = ("XXdeadXX", node_id'),
            ("x_dead_paths__mutmut_23", 'key = ("DEAD", node_id'),
            ("x_dead_paths__mutmut_27", "found = None"),
            ("x_dead_paths__mutmut_28", "found = wf.walks.get(None)"),
            ("x_merge_parents__mutmut_2", 'key = ("XXparentsXX", merge_id)'),
            ("x_merge_parents__mutmut_3", 'key = ("PARENTS", merge_id)'),
            ("x_merge_parents__mutmut_4", "found = None"),
            ("x_merge_parents__mutmut_5", "found = wf.walks.get(None)"),
            ("x_merge_parents__mutmut_9", "found = _kept(wf, None, tuple("),
            ("x_split_scope__mutmut_2", 'key = ("XXscopeXX", split_id, aggregator_id)'),
            ("x_split_scope__mutmut_3", 'key = ("SCOPE", split_id, aggregator_id)'),
            ("x_split_scope__mutmut_4", "found = None"),
            ("x_split_scope__mutmut_5", "found = wf.walks.get(None)"),
            ("x_split_scope__mutmut_20", "found = _kept(wf, None, frozenset(walked))"),
        )
    },
    **{
        _PA + name: Equivalent(line, "`typing.cast` returns its value whatever type it names")
        for name, line in (
            ("x_aggregator_of__mutmut_22", "return cast(None, found)"),
            ("x_aggregator_of__mutmut_26", 'return cast("XXstr | NoneXX", found)'),
            ("x_aggregator_of__mutmut_27", 'return cast("str | none", found)'),
            ("x_aggregator_of__mutmut_28", 'return cast("STR | NONE", found)'),
            ("x_split_scope__mutmut_26", "return cast(None, found)"),
            ("x_split_scope__mutmut_30", 'return cast("XXfrozenset[str]XX", found)'),
            ("x_split_scope__mutmut_31", 'return cast("FROZENSET[STR]", found)'),
        )
    },
    _PA + "x_dead_paths__mutmut_10": Equivalent(
        "taken[0].id != outgoing[0].id",
        "taken edges are outgoing edges of the node: with one outgoing edge and one taken, "
        "they are the same edge, and the general path finds no untaken edge and answers [] "
        "as the shortcut does",
    ),
    **_alike(
        _PA + "x_dead_paths__mutmut_",
        "the key's part for the own aggregator only has to tell apart the aggregators one "
        "node is stepped under: none (a top-level step) or the one of the innermost split "
        "whose scope holds it, the same in every step of it",
        {24: 'own_agg and ""', 25: 'own_agg or "XXXX"'},
    ),
    _PA + "x__aggregator_walk__mutmut_30": Equivalent(
        "if (inner is not None) or True else ()",
        "the successors of no node (`successors(wf, None)`) are none, as ()",
    ),
    **_alike(
        _PA + "x__aggregator_walk__mutmut_",
        "the graph is acyclic (validation), so a node walked again only comes later in the "
        "queue: the first aggregator found, breadth first, is the same",
        {37: "seen.add(None)"},
    ),
    **_alike(
        _PA + "x__dead_walk__mutmut_",
        "the graph is acyclic and `found` a dict: a node walked again adds what it added "
        "before, and the same pairs come out in the same order",
        {
            24: 'found[(dst, parent)] = ""',
            32: 'found[(dst, parent)] = ""',
            42: "visited.add(None)",
            55: "visited.add(None)",
        },
    ),
    **_alike(
        _PA + "x__dead_walk__mutmut_",
        "past a live node every node is live (reachable from it), and neither a merge's ghost "
        "for a live parent nor a live aggregator's is ever owed: walking on through live nodes "
        "finds nothing more",
        {
            36: "if dst in live and dst in visited or kind == AGGREGATOR",
            49: "if inner is None or inner in live and inner in visited:",
            50: "if inner is None and inner in live or inner in visited:",
        },
    ),
    **_alike(
        _PA + "x_type_of__mutmut_",
        "every edge's ends are nodes of the workflow (validation refuses others), and the "
        "dead walk tells a missing node by `wf.by_id`: `type_of` is never asked about one",
        {4: "node.type if (node is not None) or True", 6: 'else "XXXX"'},
    ),
    # -- runeworker/engine/workflow.py -----------------------------------------------------------
    **_alike(
        _WF + "x_embedded_credentials__mutmut_",
        "the masker reads a block's values under any key but the public ones "
        "(runeworker/engine/resolver.py, `_secret_strings`, `PUBLIC_CREDENTIAL_KEYS`), and "
        "neither key is one of those",
        {6: '"XXurl_passwordsXX": passwords', 7: '"URL_PASSWORDS": passwords'},
    ),
    _WF + "x_parse_definition__mutmut_2": Equivalent(
        "isinstance(raw, bytes)) and False",
        "bytes(raw) of bytes is an equal copy: the one path gives the same data",
    ),
    _WF + "x_parse_definition__mutmut_8": Equivalent(
        'data.decode("UTF-8")', "Python's codec names are case-insensitive: the same codec"
    ),
    # -- runeworker/engine/context.py ------------------------------------------------------------
    _CX + "xǁExtendedContextǁ__setitem____mutmut_9": Equivalent(
        'self._added[key] = ""', "`_added` is an ordered set: only its keys are ever read"
    ),
    _CX + "x_spliced__mutmut_21": Equivalent(
        "if len(prefix) > 2 else",
        'a known prefix is `{` (an empty context) or holds a whole first entry (`{"k":v`, five '
        "bytes at least): never two bytes long",
    ),
    # -- runeworker/engine/known_contexts.py, known_definitions.py, nulls.py ----------------------
    **_alike(
        _KC + "xǁKnownContextsǁ__init____mutmut_",
        _MARKER,
        {4: "secrets.token_hex(None)", 5: "secrets.token_hex(17)"},
    ),
    **_alike(
        _KD + "xǁKnownDefinitionsǁ__init____mutmut_",
        _MARKER,
        {5: "secrets.token_hex(None)", 6: "secrets.token_hex(17)"},
    ),
    **_alike(
        _KC + "xǁKnownContextsǁdecode__mutmut_",
        "a fast exit: a message shorter than `min_bytes` cannot hold a kept context (its "
        "prefix is `min_bytes` - 1 bytes at least) and its key, and with nothing kept there "
        "is nothing to find: the lookup that goes on finds none",
        {1: "if not self._kept and len(data)", 3: "len(data) <= self.min_bytes"},
    ),
    _KC + "xǁKnownContextsǁdecode__mutmut_8": Equivalent(
        "(execution is not None) or True",
        "the kept contexts are keyed by execution ids, strings: `get(None)` finds none",
    ),
    _KC + "xǁKnownContextsǁdecode__mutmut_23": Equivalent(
        "max(1, kept.key_at - _NEAR)",
        "a message is an object: its first byte is `{`, never the start of a key",
    ),
    _KC + "xǁKnownContextsǁdecode__mutmut_43": Equivalent(
        "first = next(items, )",
        "the spliced context begins with the marker member: it is never empty",
    ),
    _KC + "xǁKnownContextsǁdecode__mutmut_56": Equivalent(
        'str(value, "UTF-8")', "Python's codec names are case-insensitive: the same codec"
    ),
    _KC + "xǁKnownContextsǁremember__mutmut_12": Equivalent(
        "self._in_vain >= IN_VAIN and",
        "IN_VAIN is a multiple of SPARSE: at IN_VAIN itself `_in_vain % SPARSE` is 0, so "
        "nothing is skipped either way",
    ),
    _KC + "xǁKnownContextsǁ_keep__mutmut_6": Equivalent(
        "self.max_total / SPARSE",
        "the limit is only compared with integer totals: a fraction between two integers "
        "orders them as its floor does",
    ),
    _KC + "xǁKnownContextsǁ_keep__mutmut_30": Equivalent(
        "popitem(last=None)", "None is false as False is: the oldest goes"
    ),
    **_alike(
        _KC + "x__value_starting__mutmut_",
        "the second pass looks at the keys that begin before `start`; one more byte, or no "
        "end at all, adds only keys the first pass looked at and refused",
        {
            2: "start + len(_KEY) + 1",
            32: "found = data.find(_KEY, found + 1, None)",
            35: "found = data.find(_KEY, found + 1, )",
        },
    ),
    **_alike(
        _KC + "x__value_starting__mutmut_",
        "the first pass's end is the end of the data: None or no end is the same end",
        {8: "data.find(_KEY, lo, None)", 11: "data.find(_KEY, lo, )"},
    ),
    **_alike(
        _KC + "x__value_starting__mutmut_",
        "a found value starts after its key and colon (at least 22 bytes in): never at 0",
        {23: "if at > 0 and", 24: "if at >= 1 and"},
    ),
    _KC + "x__value_starting__mutmut_38": Equivalent(
        "found = data.find(_KEY, found + 2, hi)",
        "two keys cannot begin one byte apart: the key's second byte is `a`, not `\"`",
    ),
    **_alike(
        _KC + "x__execution_id__mutmut_",
        "`value_at` gives -1 or a position past the key and its colon, and the closing quote "
        "is found after the opening one: neither is ever 0",
        {7: "if at <= 0 or", 8: "if at < 1 or", 24: "if end <= 0 or", 25: "if end < 1 or"},
    ),
    **_alike(
        _KD + "xǁKnownDefinitionsǁdecode__mutmut_",
        "a fast exit: a message shorter than `min_bytes` cannot hold a kept definition (each "
        "is `min_bytes` long at least), and with none kept the loop finds none",
        {1: "if not self._defs and len(data)", 3: "len(data) <= self.min_bytes"},
    ),
    **_alike(
        _KD + "xǁKnownDefinitionsǁdecode__mutmut_",
        "`value_at` gives -1 or a position past the key and its colon: never 0",
        {9: "if at <= 0:", 10: "if at < 1:"},
    ),
    **_alike(
        _NU + "x__plan__mutmut_",
        "a plan's kind is only compared with `list` and `dict`: any other word is a Struct's",
        {6: "_Plan(None, optional=optional)", 10: '_Plan("XXstructXX"', 11: '_Plan("STRUCT"'},
    ),
    # -- runeworker/engine/registry.py ------------------------------------------------------------
    _RG + "xǁTimeLimitǁ__init____mutmut_5": Equivalent(
        "0 < seconds <= math.inf", "now + inf is inf: the deadline of no limit either way"
    ),
    _RG + "xǁMeterǁcount__mutmut_1": Equivalent(
        "amount: float = 2.0", "a Protocol's method body never runs: each meter has its own default"
    ),
    _RG + "xǁ_NoMeterǁcount__mutmut_1": Equivalent(
        "amount: float = 2.0", "the meter that measures nothing ignores the amount"
    ),
    # -- runeworker/adapters/redis_state.py (one server; the Cluster's branches are not reached) --
    _RS + "__init____mutmut_44": Equivalent(
        'or "XXXX")',
        "without a password the mask looks for a text no Redis error holds: nothing masked",
    ),
    **{
        _RS + f"_advance_args__mutmut_{n}": Equivalent(
            line,
            "the scripts read the leaf context and the failure's fields only when their flag "
            "(ARGV[4], ARGV[6]) is 1: with the flag 0 the bytes are never read",
        )
        for n, line in (
            (9, '[0, b"XXXX"]'),
            (14, 'b"XXXX", b"", b""'),
            (15, 'b"", b"XXXX", b""'),
            (16, 'b"", b"", b"XXXX"'),
        )
    },
    _RS + "arrive__mutmut_10": Equivalent(
        '(1, b"")',
        "the barriers' reads skip an empty payload (runeworker/adapters/redis_flow.py), so a "
        "ghost sent as data of no bytes is still a ghost; a real payload is JSON, never empty",
    ),
    **_alike(
        _RS + "arrive__mutmut_",
        "a cancelled arrival absorbs its token in an execution that is closed already, which "
        "never closes again: the script's advance adds nothing to the reply ({'cancelled', 0}, "
        "checked against the live Redis), so the branch decoding a transition is never taken",
        {
            109: "if (len(reply) > 2) and False else",
            111: "_transition(None) if len(reply) > 2",
            112: "_transition(reply[3:]) if len(reply) > 2",
            114: "_transition(reply[2:]) if len(reply) > 3",
        },
    ),
    _RS + "arrive__mutmut_11": Equivalent(
        '(0, b"XXXX")', "the arrive script reads the payload only when its flag is 1"
    ),
    **_alike(
        _RS + "arrive__mutmut_",
        "`where` names the barrier in the message of a lost barrier only; the other lost "
        "states' messages have no place for it (runeworker/errors.py, `_LOST`)",
        {88: "where = None", 89: 'where = "XXXX"'},
    ),
    **_alike(
        _RS + "spare_attempts__mutmut_",
        "on one server a MULTI/EXEC around the SETs writes the same flags; the script only "
        "asks whether the flag exists, not its value",
        {3: "pipeline(transaction=None)", 4: "pipeline(transaction=True)", 13: "1], 2, ex="},
    ),
    **_alike(
        _RS + "_pipeline_begun__mutmut_",
        "on one server a MULTI/EXEC around the start records and the lookups reads and writes "
        "the same keys, to the same effect",
        {3: "pipeline(transaction=None)", 4: "pipeline(transaction=True)"},
    ),
    _RS + "schedule__mutmut_2": Equivalent(
        "if owner or any(",
        "a timer without an owner then flushes the start records first: they are written "
        "sooner (before the broker's commit as always), nothing else changes",
    ),
    _RS + "receipts__mutmut_4": Equivalent(
        "if isinstance(self._client, RedisCluster):",
        "on one server the pipeline of HSET, EXPIRE and HEXISTS records and finds the same "
        "receipts as the script (the script is the cheaper way)",
    ),
    **_alike(
        _RS + "ping_problem__mutmut_",
        "redis-py's PING answers True or raises (a server answering something else is not "
        "Redis): the branch and its words are never reached",
        {
            2: "ping()) or True",
            3: '"XXno answer to PINGXX"',
            4: '"no answer to ping"',
            5: '"NO ANSWER TO PING"',
        },
    ),
    _RS + "ping_problem__mutmut_9": Equivalent(
        "type(None).__name__",
        "redis-py's connection errors always say what failed: the type's name is never used",
    ),
    _RS + "write_problem__mutmut_7": Equivalent(
        'b"XX1XX", px=1000', "the probe's value is never read: only whether the write is taken"
    ),
    **_alike(
        _RS + "memory_policy__mutmut_",
        "INFO's section names are case-insensitive, and INFO of every section holds the "
        "memory one: the same fields",
        {17: "info(None)", 19: 'info("MEMORY")'},
    ),
    _RS + "memory_policy__mutmut_30": Equivalent(
        "isinstance(info, dict) or",
        "one server's INFO is a dict: only a Cluster's reply can hold something else",
    ),
    **_alike(
        _RS + "memory_policy__mutmut_",
        "one server gives one (policy, maxmemory) pair: `next` finds it or falls back to it, "
        "and on a Cluster (several) the tests of tests/cluster are not in this run",
        {39: "f[1] != NO_EVICTION", 40: "f[0] == NO_EVICTION"},
    ),
    "runeworker.adapters.redis_state.x__transition__mutmut_16": Equivalent(
        "split(None)",
        "timer ids are UUIDs: split on whitespace or on newlines, the same ids",
    ),
    # -- runeworker/child/worker.py -------------------------------------------------------------
    "runeworker.child.worker.x__jittered__mutmut_1": Equivalent(
        "if limit < 0:", "a limit of 0 gives 0 either way: 0 plus randint(0, 0)"
    ),
    **_alike(
        _WK + "__init____mutmut_",
        _WORKER_FALSY,
        {
            5: "self.stopping = None",
            64: "self._step_started = None",
            118: "self._blocked_at = None",
            121: "self._batch_spared = None",
            123: "self._ack_timeout_told = None",
        },
    ),
    _WK + "_handle__mutmut_125": Equivalent("self._step_started = None", _WORKER_FALSY),
    _WK + "_serve__mutmut_53": Equivalent("self._batch_spared = None", _WORKER_FALSY),
    _WK + "_acks_timed_out__mutmut_1": Equivalent("self._ack_timeout_told = None", _WORKER_FALSY),
    _WK + "_mirror__mutmut_1": Equivalent("mirrored = None", _WORKER_FALSY),
    _WK + "__init____mutmut_71": Equivalent(
        '_spared: Delivery | None = ""',
        "compared by identity with the delivery whose step runs (`is not self._spared`): a "
        "str is never that delivery, as None is not",
    ),
    **_alike(
        _WK + "__init____mutmut_",
        "the monotonic clock counts seconds since boot, past 1 s on any running machine: the "
        "first scheduler tick and the first RSS check are due at once either way",
        {55: "self._next_tick = 1.0", 63: "self._next_rss_check = 1.0"},
    ),
    **_alike(
        _WK + "__init____mutmut_",
        "read only with a board (`_handle`), and with a board `run` beats BOOTING, which sets "
        "it, before any step",
        {66: "self._beaten_at = None", 67: "self._beaten_at = 1.0"},
    ),
    _WK + "__init____mutmut_135": Equivalent("self._commits = 1", _WORKER_COMMITS),
    _WK + "_commit__mutmut_5": Equivalent("self._commits += 2", _WORKER_COMMITS),
    **_alike(
        _WK + "_run_batch__mutmut_",
        "every list zipped there is built from the batch, one entry per delivery: they are "
        "always as long, and `strict` never raises",
        {
            12: "zip(batch, read, strict=None)",
            15: "zip(batch, read, )",
            16: "zip(batch, read, strict=False)",
            25: "zip(batch, keys, strict=None)",
            28: "zip(batch, keys, )",
            29: "zip(batch, keys, strict=False)",
            49: "zip(read, seen, strict=None)",
            52: "zip(read, seen, )",
            53: "zip(read, seen, strict=False)",
            62: "zip(batch, read, keys, seen, strict=None)",
            67: "zip(batch, read, keys, seen, )",
            68: "zip(batch, read, keys, seen, strict=False)",
        },
    ),
    _WK + "_after__mutmut_8": Equivalent("> self._next_rss_check", _WORKER_CLOCK),
    _WK + "_hand_back_stale__mutmut_5": Equivalent(
        "now - d.at >= self._stale_after", _WORKER_CLOCK
    ),
    _WK + "_handle__mutmut_13": Equivalent(
        "now - self._beaten_at >= self._beat_after", _WORKER_CLOCK
    ),
    _WK + "_run_batch__mutmut_75": Equivalent(
        "time.monotonic() - d.at >= stale_after", _WORKER_CLOCK
    ),
    _WK + "_serve__mutmut_45": Equivalent(
        "now - pending[0].at >= self._stale_after", _WORKER_CLOCK
    ),
    _WK + "_tick_scheduler__mutmut_3": Equivalent("now <= self._next_tick", _WORKER_CLOCK),
    **_alike(
        _WK + "_serve__mutmut_",
        "`_serve` returns instead of turning once more, and `run` calls it again at once while "
        "not stopping: the same turn, with the same settings read again",
        dict.fromkeys((30, 39, 47, 58), "break"),
    ),
    **_alike(
        _WK + "_serve__mutmut_",
        "the write runs only when the due receipts are RECEIPTS_EVERY old (`due_in() == 0`), "
        "and `look_up` writes receipts that old whether asked to or not (the clock only moves on)",
        {20: "look_up([], write=None)", 22: "look_up([], )", 23: "look_up([], write=False)"},
    ),
    _WK + "_handle__mutmut_57": Equivalent(
        "reject(self.executor, None, reason, msg)",
        "`reject` reads the body only when it has no decoded message, and here it has one "
        "(the poison verdict comes after the check for an undecodable body)",
    ),
    _WK + "stop__mutmut_1": Equivalent(
        "_signum: int = 1", "the signal number is never read: `stop` only sets the flag"
    ),
}
