"""tools.py - Python functions as tools: the OpenAI tool definition
{"type": "function", "function": {name, description, parameters}} made from a
function's signature, type hints and docstring (as the OpenAI Agents SDK and
smolagents do), and the call of a function with a model's arguments."""
import inspect
import json
import re
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .errors import ArgumentError

try:  # Python 3.8+: Literal, get_origin, get_args
    from typing import Literal, get_args, get_origin
except ImportError:  # pragma: no cover
    Literal = None
    get_args = lambda t: getattr(t, "__args__", ())  # noqa: E731
    get_origin = lambda t: getattr(t, "__origin__", None)  # noqa: E731

_NONE = type(None)


def _schema(tp, where) -> Dict[str, Any]:
    """JSON Schema of a type hint: str, int, float, bool, None, list[...],
    tuple, dict, Literal[...], Optional[...] / Union[...], Any."""
    if tp is inspect.Parameter.empty or tp is Any:
        return {}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is _NONE or tp is None:
        return {"type": "null"}
    if tp in (list, List):
        return {"type": "array"}
    if tp in (dict, Dict):
        return {"type": "object"}
    origin, args = get_origin(tp), get_args(tp)
    if Literal is not None and origin is Literal:
        vals = list(args)
        kinds = {type(v) for v in vals}
        s = {"enum": vals}
        if kinds == {str}:
            s["type"] = "string"
        elif kinds <= {int} and bool not in kinds:
            s["type"] = "integer"
        return s
    if origin in (list, List, typing.Sequence, tuple) and origin is not tuple:
        return {"type": "array", "items": _schema(args[0], where)} if args else {"type": "array"}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema(args[0], where)}
        return {"type": "array", "prefixItems": [_schema(a, where) for a in args], "minItems": len(args),
                "maxItems": len(args)}
    if origin in (dict, Dict):
        if len(args) == 2 and args[1] is not Any:
            return {"type": "object", "additionalProperties": _schema(args[1], where)}
        return {"type": "object"}
    if origin is Union:
        opts = [a for a in args if a is not _NONE]
        if len(opts) == 1 and len(args) == 2:
            inner = _schema(opts[0], where)
            if "type" in inner and isinstance(inner["type"], str) and set(inner) <= {"type", "items"}:
                return dict(inner, type=[inner["type"], "null"])
            return {"anyOf": [inner, {"type": "null"}]}
        return {"anyOf": [_schema(a, where) for a in args]}
    raise ArgumentError("%s: type %r has no JSON Schema form (use str, int, float, bool, list[...], "
                        "Literal[...], Optional[...])" % (where, tp))


def _doc_params(doc: str) -> Tuple[str, Dict[str, str]]:
    """The summary of a docstring and its per-parameter descriptions, from
    Google style ("Args:\\n    x: ..."), reST (":param x: ...") or NumPy style."""
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    params: Dict[str, str] = {}
    for m in re.finditer(r":param\s+(?:\w+\s+)?(\w+)\s*:\s*(.+)", doc):
        params[m.group(1)] = m.group(2).strip()
    lines = doc.splitlines()
    section = None
    cur = None
    summary: List[str] = []
    for i, line in enumerate(lines):
        s = line.strip()
        if re.match(r"^(Args|Arguments|Parameters|Params)\s*:?\s*$", s):
            section = "args"
            continue
        if re.match(r"^(Returns?|Raises|Yields|Examples?|Notes?)\s*:?\s*$", s):
            section = "other"
            continue
        if section is None:
            if s.startswith(":"):
                section = "other"
            elif s:
                summary.append(s)
            elif summary:
                section = "other"  # the summary is the first paragraph
            continue
        if section == "args":
            if set(s) == {"-"}:
                continue
            m = re.match(r"^(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$", s)
            if m and (line.startswith(" ") is False or len(line) - len(line.lstrip()) <= 4):
                cur = m.group(1)
                params[cur] = m.group(3).strip()
            elif cur and s:
                params[cur] = (params[cur] + " " + s).strip()
    return " ".join(summary).strip(), params


def function_tool(fn: Callable) -> Dict[str, Any]:
    """The OpenAI tool definition of a Python function: its name, the first
    paragraph of its docstring, and a parameters schema from its type hints
    (parameters with defaults are not required)."""
    if not callable(fn):
        raise ArgumentError("tools: %r is not callable" % (fn,))
    name = getattr(fn, "__name__", None)
    if not name or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name):
        raise ArgumentError("tools: function name %r: expected 1-64 letters, digits, _ . -" % (name,))
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = getattr(fn, "__annotations__", {})
    summary, pdocs = _doc_params(inspect.getdoc(fn) or "")
    props: Dict[str, Any] = {}
    required: List[str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        s = _schema(hints.get(p.name, p.annotation), "%s(%s)" % (name, p.name))
        if p.name in pdocs and pdocs[p.name]:
            s = dict(s, description=pdocs[p.name])
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        elif p.default is not None and isinstance(p.default, (str, int, float, bool)):
            s = dict(s, default=p.default)
        props[p.name] = s
    params = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    return {"type": "function", "function": {"name": name, "description": summary or name, "parameters": params}}


def tool_specs(tools) -> List[Tuple[Dict[str, Any], Optional[Callable]]]:
    """(OpenAI definition, callable or None) for each tool: a Python function,
    or a dict in the OpenAI tools form (optionally with a "callable")."""
    out = []
    names = set()
    for i, t in enumerate(tools or []):
        if isinstance(t, dict):
            fn = t.get("callable")
            d = {k: v for k, v in t.items() if k != "callable"}
            f = d.get("function") if d.get("type") == "function" else None
            if not isinstance(f, dict) or not isinstance(f.get("name"), str):
                raise ArgumentError('tools[%d]: expected {"type": "function", "function": {"name", "description", '
                                    '"parameters"}}' % i)
            spec = d
        else:
            spec, fn = function_tool(t), t
        n = spec["function"]["name"]
        if n in names:
            raise ArgumentError("tools[%d]: a second tool named %r" % (i, n))
        names.add(n)
        out.append((spec, fn))
    return out


def call_tool(fn: Callable, arguments: Dict[str, Any]) -> str:
    """Calls fn(**arguments) and returns its result as the text the model
    reads: a str as it is, anything else as JSON (or str() when it is not
    JSON-serializable). An exception becomes "error: Type: message"."""
    try:
        r = fn(**arguments)
    except Exception as exc:  # the model reads the failure and can recover
        return "error: %s: %s" % (type(exc).__name__, exc)
    if isinstance(r, str):
        return r
    try:
        return json.dumps(r, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(r)
