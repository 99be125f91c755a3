"""agent.py - duet.Agent: a session, tools (plain Python functions, OpenAI
tool dicts, and optionally duet's built-in device tools), and the loop that
generates, runs the calls the model makes, hands their results back and
generates again until the model answers (duet_agent_run in libduet.so).

Tool calls are decoded under a token mask compiled from each tool's
parameters schema, so the arguments a Python function receives always parse
and validate; an exception in a tool becomes the tool's result text."""
import ctypes
import json
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from . import _lib
from ._lib import lib, enc
from .errors import error_for, ArgumentError, StateError
from .model import Session, _check
from .tools import tool_specs, call_tool

TOOL_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.POINTER(ctypes.c_void_p))


class _ToolCall(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("name", ctypes.c_char_p), ("arguments", ctypes.c_char_p)]


class _Step(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("arguments", ctypes.c_char_p), ("result", ctypes.c_char_p)]


class _ToolboxOptions(ctypes.Structure):
    _fields_ = [("sysroot", ctypes.c_char_p), ("timeout_ms", ctypes.c_int), ("output_cap", ctypes.c_size_t)]


_P, _I, _S = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
_api = {
    "set_tools": _lib.optional("duet_session_set_tools", _I, [_P, _S]),
    "set_tool_choice": _lib.optional("duet_session_set_tool_choice", _I, [_P, _S]),
    "agent_run": _lib.optional("duet_agent_run", _I, [_P, _S, _I, TOOL_FN, _P, _lib.TOKEN_CB, _P,
                                                        ctypes.POINTER(ctypes.c_void_p)]),
    "n_steps": _lib.optional("duet_agent_n_steps", _I, [_P]),
    "step_at": _lib.optional("duet_agent_step_at", ctypes.POINTER(_Step), [_P, _I]),
    "tb_default": _lib.optional("duet_toolbox_options_default", None, [ctypes.POINTER(_ToolboxOptions)]),
    "tb_create": _lib.optional("duet_toolbox_create", _I, [ctypes.POINTER(_P), ctypes.POINTER(_ToolboxOptions)]),
    "tb_free": _lib.optional("duet_toolbox_free", None, [_P]),
    "tb_errmsg": _lib.optional("duet_toolbox_errmsg", _S, [_P]),
    "tb_builtin": _lib.optional("duet_toolbox_add_builtin", _I, [_P]),
    "tb_tools": _lib.optional("duet_toolbox_tools_json", _S, [_P]),
    "tb_call": _lib.optional("duet_toolbox_call", _I, [_P, _S, _S, ctypes.POINTER(ctypes.c_void_p)]),
}
_lib.libc.malloc.restype = ctypes.c_void_p
_lib.libc.malloc.argtypes = [ctypes.c_size_t]


def _need(name):
    fn = _api[name]
    if fn is None:
        raise StateError("this libduet.so has no agent support (rebuild duet)")
    return fn


def _c_strdup(text: str) -> int:
    """A malloc'd copy of text (UTF-8, NUL-terminated) that libduet frees."""
    b = text.encode("utf-8", "replace").replace(b"\0", b"")
    p = _lib.libc.malloc(len(b) + 1)
    if not p:
        raise MemoryError("malloc failed")
    ctypes.memmove(p, b + b"\0", len(b) + 1)
    return p


class AgentStep:
    """One tool call the agent ran: .tool (name), .arguments (dict), .result (str)."""

    __slots__ = ("tool", "arguments", "result")

    def __init__(self, tool: str, arguments: Dict[str, Any], result: str):
        self.tool, self.arguments, self.result = tool, arguments, result

    def __repr__(self):
        return "AgentStep(tool=%r, arguments=%r, result=%r)" % (self.tool, self.arguments, self.result)


class AgentResult:
    """What Agent.run returns: .answer (the final text) and .steps (the
    tool calls, in order), .finish_reason."""

    __slots__ = ("answer", "steps", "finish_reason")

    def __init__(self, answer: str, steps: List[AgentStep], finish_reason: str):
        self.answer, self.steps, self.finish_reason = answer, steps, finish_reason

    def to_dict(self) -> Dict[str, Any]:
        return {"answer": self.answer,
                "steps": [{"tool": s.tool, "arguments": s.arguments, "result": s.result} for s in self.steps]}

    def __repr__(self):
        return "AgentResult(answer=%r, steps=%r)" % (self.answer, self.steps)


class Agent:
    """An agent over a session (duet.LLM or Model.session()).

    tools: Python functions (schema from type hints and docstring) and/or
    OpenAI-form tool dicts (a dict may carry its implementation under
    "callable"); builtin=True adds duet's read-only device tools
    (docs/TOOLS.md; sysroot= points them at another /proc and /sys tree).
    tool_choice: "auto", "none", "required", or a tool's name (the call is
    forced on the first step). max_steps bounds the generate rounds."""

    def __init__(self, llm: Session, tools: Sequence[Union[Callable, Dict[str, Any]]] = (), builtin: bool = False,
                 tool_choice: str = "auto", max_steps: int = 5, sysroot: Optional[str] = None,
                 tool_timeout_ms: int = 0):
        if not isinstance(llm, Session):
            raise ArgumentError("llm: expected a duet.Session or duet.LLM, got %s" % type(llm).__name__)
        if not isinstance(max_steps, int) or max_steps < 1 or max_steps > 64:
            raise ArgumentError("max_steps: expected 1..64, got %r" % (max_steps,))
        self.llm = llm
        self.max_steps = max_steps
        self._fns: Dict[str, Callable] = {}
        specs = []
        for spec, fn in tool_specs(tools):
            specs.append(spec)
            if fn is not None:
                self._fns[spec["function"]["name"]] = fn
        self._tb = None
        if builtin or not specs:
            o = _ToolboxOptions()
            _need("tb_default")(ctypes.byref(o))
            o.sysroot = enc(sysroot)
            o.timeout_ms = int(tool_timeout_ms)
            tb = ctypes.c_void_p()
            _check(_need("tb_create")(ctypes.byref(tb), ctypes.byref(o)), lambda: "toolbox: out of memory")
            self._tb = tb
        if builtin:
            _check(_need("tb_builtin")(self._tb), lambda: _api["tb_errmsg"](self._tb).decode())
            for t in json.loads(_need("tb_tools")(self._tb).decode("utf-8")):
                if t["function"]["name"] in self._fns:
                    raise ArgumentError("tools: %r is also a built-in tool" % t["function"]["name"])
                specs.append(t)
        if not specs:
            raise ArgumentError("tools: expected at least one tool (a function, a tool dict, or builtin=True)")
        self.tools: List[Dict[str, Any]] = specs
        self._choice = tool_choice
        h = llm._handle()
        _check(_need("set_tools")(h, enc(json.dumps(specs))), llm._errmsg)
        self.tool_choice = tool_choice
        self._errors: Dict[str, str] = {}

    @property
    def tool_choice(self) -> str:
        return self._choice

    @tool_choice.setter
    def tool_choice(self, choice: str) -> None:
        _check(_need("set_tool_choice")(self.llm._handle(), enc(choice)), self.llm._errmsg)
        self._choice = choice

    def close(self) -> None:
        """Stops the built-in toolbox (the session stays open)."""
        if self._tb:
            _api["tb_free"](self._tb)
            self._tb = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _run_tool(self, name: str, args_text: str) -> (int, str):
        try:
            args = json.loads(args_text) if args_text else {}
        except ValueError as exc:
            return 1, json.dumps({"error": "arguments are not JSON: %s" % exc})
        fn = self._fns.get(name)
        if fn is not None:
            if not isinstance(args, dict):
                return 1, json.dumps({"error": "arguments must be a JSON object"})
            out = call_tool(fn, args)
            return (1 if out.startswith("error: ") else 0), out
        if self._tb:
            res = ctypes.c_void_p()
            rc = _api["tb_call"](self._tb, enc(name), enc(args_text or "{}"), ctypes.byref(res))
            text = _lib.take_string(res.value)
            return (0 if rc == 0 else 1), text
        return 1, json.dumps({"error": "no tool named %s" % name})

    def run(self, question: Optional[str], stream: Optional[Callable[[str], None]] = None,
            max_tokens: Optional[int] = None, **sampling) -> AgentResult:
        """Asks question (a user message; None: the session's history is
        ready) and loops until the model answers. stream, if given, receives
        the final answer's pieces as they come. Sampling keywords as
        Session.generate takes them. Ctrl-C aborts and raises KeyboardInterrupt."""
        s = self.llm
        h = s._handle()
        s._options(dict(sampling, max_tokens=max_tokens))
        if s._mode == "raw":
            raise StateError("the session holds raw text; call reset() before running an agent")

        def tool_cb(user, name, args, result):
            try:
                rc, text = self._run_tool(name.decode("utf-8", "replace"),
                                          args.decode("utf-8", "replace") if args else "{}")
                result[0] = _c_strdup(text)
                return rc
            except BaseException as exc:  # never let an exception unwind through C
                try:
                    result[0] = _c_strdup(json.dumps({"error": "%s: %s" % (type(exc).__name__, exc)}))
                except MemoryError:
                    return -7
                return 1

        pieces: List[str] = []

        def on_piece(user, piece, n, token):
            if n:
                t = ctypes.string_at(piece, n).decode("utf-8", "replace")
                pieces.append(t)
                if stream:
                    try:
                        stream(t)
                    except Exception:
                        return 1
            return 0

        tcb, pcb = TOOL_FN(tool_cb), _lib.TOKEN_CB(on_piece)
        result: Dict[str, Any] = {}
        answer = ctypes.c_void_p()

        def worker():
            result["rc"] = _need("agent_run")(h, enc(question), self.max_steps, tcb, None, pcb, None,
                                              ctypes.byref(answer))

        t = threading.Thread(target=worker, name="duet-agent", daemon=True)
        t.start()
        try:
            while t.is_alive():
                t.join(0.05)
        except BaseException:
            lib.duet_session_abort(h)
            while t.is_alive():
                t.join(0.05)
            raise
        s._mode = "chat"
        rc = result.get("rc", -11)
        text = _lib.take_string(answer.value) if answer.value else "".join(pieces)
        if rc < 0:
            raise error_for(rc, s._errmsg())
        steps = []
        for i in range(_need("n_steps")(h)):
            st = _api["step_at"](h, i)
            if not st:
                continue
            st = st.contents
            raw = (st.arguments or b"{}").decode("utf-8", "replace")
            try:
                args = json.loads(raw)
            except ValueError:
                args = {"_raw": raw}
            steps.append(AgentStep((st.name or b"").decode("utf-8", "replace"), args,
                                   (st.result or b"").decode("utf-8", "replace")))
        from .model import _FINISH
        return AgentResult(text, steps, _FINISH.get(rc, "stop"))
