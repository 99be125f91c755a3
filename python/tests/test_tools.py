"""test_tools.py - Python functions as tools: schemas from type hints and
docstrings, and the agent loop calling them (forced by tool_choice)."""
import json
from typing import List, Literal, Optional

import jsonschema
import pytest

import duet
from duet.tools import function_tool
from conftest import NAMES

needs_agent = pytest.mark.skipif(duet.agent._api["agent_run"] is None,
                                 reason="this libduet.so has no agent support yet")


def set_thermostat(room: str, degrees: float, mode: Literal["heat", "cool"] = "heat",
                   fan: Optional[bool] = None, zones: List[int] = None) -> str:
    """Set a room's thermostat.

    Args:
        room: The room's name.
        degrees: Target temperature in Celsius.
        mode: Heating or cooling.
    """
    return "ok"


def test_schema_from_type_hints():
    t = function_tool(set_thermostat)
    f = t["function"]
    assert t["type"] == "function" and f["name"] == "set_thermostat"
    assert f["description"] == "Set a room's thermostat."
    p = f["parameters"]
    assert p["type"] == "object" and p["required"] == ["room", "degrees"]
    assert p["properties"]["room"] == {"type": "string", "description": "The room's name."}
    assert p["properties"]["degrees"]["type"] == "number"
    assert p["properties"]["mode"]["enum"] == ["heat", "cool"] and p["properties"]["mode"]["default"] == "heat"
    assert p["properties"]["fan"]["type"] == ["boolean", "null"]
    assert p["properties"]["zones"] == {"type": "array", "items": {"type": "integer"}}
    jsonschema.Draft202012Validator.check_schema(p)


def test_unsupported_type_is_an_argument_error():
    def f(x: complex):
        return x
    with pytest.raises(duet.ArgumentError) as ei:
        function_tool(f)
    assert "f(x)" in str(ei.value)


@needs_agent
def test_named_tool_choice_calls_the_python_tool(model):
    seen = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        seen.append((a, b))
        return a + b

    schema = function_tool(add)["function"]["parameters"]
    with model.session(adapter=NAMES[0]) as s:
        agent = duet.Agent(s, tools=[add], tool_choice="add", max_steps=2)
        r = agent.run("What is 2 plus 3?", max_tokens=64, temperature=0)
    assert r.steps and r.steps[0].tool == "add"
    jsonschema.validate(r.steps[0].arguments, schema)
    assert seen and str(sum(seen[0])) == r.steps[0].result
    assert isinstance(r.answer, str)


@needs_agent
def test_tool_exception_reaches_the_model(model):
    def explode(reason: str) -> str:
        """Always fails."""
        raise RuntimeError("boom: " + reason)

    with model.session() as s:
        r = duet.Agent(s, tools=[explode], tool_choice="required", max_steps=2).run("go", max_tokens=48)
    assert r.steps and r.steps[0].tool == "explode"
    assert "RuntimeError" in r.steps[0].result and "boom" in r.steps[0].result


@needs_agent
def test_builtin_tools_listed(model):
    with model.session() as s:
        agent = duet.Agent(s, builtin=True)
        names = {t["function"]["name"] for t in agent.tools}
    assert {"get_cpu_temperature", "get_uptime", "get_memory_usage"} <= names
