"""base_chat.py - a little chat-formatted text mixed into the base model's
pretraining, so the base already knows ChatML and the tool-call format (as a
real instruct base does) and the adapters learn their domain, not the format:
  - questions on library calls, file formats and overviews (man sections 2, 3,
    5, 7: not the commands, which are the `shell` adapter's domain) and on
    Python modules, answered from the NAME line / the module title;
  - tool calls to other, made-up tools (weather, unit conversion, document
    search): the format without the device tools of the `tools` adapter.
"""
import json
import random
import re

CITIES = ["Paris", "Berlin", "Tokyo", "Lima", "Oslo", "Cairo", "Austin", "Madrid", "Seoul", "Toronto", "Nairobi"]
GEN_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name."},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "convert_units", "description": "Convert a value between units.",
     "parameters": {"type": "object", "properties": {"value": {"type": "number"}, "from_unit": {"type": "string"},
                    "to_unit": {"type": "string"}}, "required": ["value", "from_unit", "to_unit"]}}},
    {"type": "function", "function": {"name": "search_docs", "description": "Search the documentation.",
     "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
]
CONV = [("km", "miles", 0.621371), ("miles", "km", 1.609344), ("kg", "pounds", 2.20462), ("liters", "gallons", 0.264172),
        ("meters", "feet", 3.28084)]


def doc_facts(docs):
    """(question subject, answer) pairs from man sections 2/3/5/7 and Python module docs."""
    out = []
    for d in docs:
        s = d["src"]
        if re.match(r"man[2357]/", s):
            m = re.search(r"^NAME\n\s+(.+?)\s+[-\u2010\u2013\u2014]+\s+(.+?)\n(?:\S|\n)", d["text"], re.M | re.S)
            if m:
                sec = s[3]
                name = m.group(1).split(",")[0].strip()
                desc = re.sub(r"\s+", " ", m.group(2)).strip().rstrip(".")
                if len(desc) < 150 and re.match(r"^[\w.:+-]+$", name):
                    out.append(("%s(%s)" % (name, sec), "%s(%s): %s." % (name, sec, desc)))
        elif s.startswith("python/library/"):
            m = re.search(r":mod:`([\w.]+)`\s+---\s+(.+)", d["text"])
            if m:
                out.append(("the Python module %s" % m.group(1), "`%s`: %s." % (m.group(1), m.group(2).strip().rstrip("."))))
    return out


def _fact_chat(r, facts):
    subj, ans = r.choice(facts)
    q = r.choice(["What is %s?", "Tell me about %s.", "What does %s do?", "Explain %s briefly.", "%s?"]) % subj
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ans}]}


def _tool_chat(r):
    k = r.randrange(3)
    if k == 0:
        c = r.choice(CITIES)
        args = {"city": c}
        if r.random() < 0.3:
            args["unit"] = "fahrenheit"
        q = r.choice(["What's the weather in %s?", "Is it raining in %s?", "weather %s"]) % c
        t = round(r.uniform(-5, 35), 1)
        if args.get("unit") == "fahrenheit":
            t = round(t * 9 / 5 + 32, 1)
            q = q.rstrip("?") + " in Fahrenheit?"
        res = {"city": c, "temperature": t, "sky": r.choice(["clear", "cloudy", "rain"])}
        ans = "In %s it is %s degrees and %s." % (c, json.dumps(t), res["sky"])
    elif k == 1:
        a, b, f = r.choice(CONV)
        v = r.choice([1, 2, 5, 10, 42, 100, 3.5])
        args = {"value": v, "from_unit": a, "to_unit": b}
        q = "Convert %s %s to %s." % (v, a, b)
        res = {"result": round(v * f, 3)}
        ans = "%s %s is %s %s." % (v, a, json.dumps(res["result"]), b)
    else:
        topic = r.choice(["signals", "pipes", "sockets", "file permissions", "locales", "cron", "regular expressions"])
        args = {"query": topic}
        q = r.choice(["Find the docs about %s.", "Search the documentation for %s."]) % topic
        res = {"results": ["%s(7)" % topic.split()[0]]}
        ans = "The page %s covers %s." % (res["results"][0], topic)
    name = ["get_weather", "convert_units", "search_docs"][k]
    msgs = [{"role": "user", "content": q},
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
                                                                  "function": {"name": name, "arguments": args}}]},
            {"role": "tool", "name": name, "content": json.dumps(res, separators=(",", ":"))},
            {"role": "assistant", "content": ans}]
    return {"messages": msgs, "tools": GEN_TOOLS}


def chat_set(docs, seed, n):
    facts = doc_facts(docs)
    r = random.Random(seed)
    return [_tool_chat(r) if r.random() < 0.35 or not facts else _fact_chat(r, facts) for _ in range(n)]
