#!/usr/bin/env python3
"""agent_eval.py - the agent loop end to end on the demo model: train/'s 300
held-out tool prompts (the same set train/README.md scores, seed 1234 + 2)
answered by duet's agent (duet_agent_run through the Python package) with
the built-in tools over a fake machine (--sysroot), greedy.

    python3 bench/agent_eval.py [--model build/demo.duet] [--adapter tools] [--n 300]
                                [--max-tokens 160] [--out FILE.json] [--unconstrained]

Per prompt: earlier turns replayed, the last question asked, the calls run.
Scores: right tools (the first round's calls name exactly the expected
tools), exact (the expected arguments too), valid (every call's arguments
valid against its tool's schema under python3-jsonschema, an independent
validator), answered (the final answer holds the headline value of every
tool result: the temperature, the load, ...), and latency per question
(wall time of the whole loop, model already loaded). Prints a Markdown
summary.

--unconstrained measures the first round without duet's tool-call mask, as
train/eval_duet.py does: the prompt rendered with the tools, raw greedy
text, its <tool_call> blocks parsed; a call that does not parse, names an
unknown tool or breaks its schema is not valid."""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
import jsonschema  # noqa: E402

import duet  # noqa: E402
from duet import _lib  # noqa: E402
import tools_dialogues  # noqa: E402
from train import parse_calls  # noqa: E402  (the same parsing as the HF evaluation)

_lib.lib.duet_session_append_message_json.restype = _lib.ctypes.c_int
_lib.lib.duet_session_append_message_json.argtypes = [_lib.ctypes.c_void_p, _lib.ctypes.c_char_p]


def fake_machine(root):
    """A device whose readings the scorer knows."""
    files = {
        "sys/class/thermal/thermal_zone0/temp": "61375\n",
        "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
        "proc/loadavg": "0.73 0.58 0.41 2/311 9123\n",
        "proc/cpuinfo": "".join("processor\t: %d\n\n" % i for i in range(4)),
        "proc/meminfo": "MemTotal:        3906000 kB\nMemFree:  100 kB\nMemAvailable:    2406000 kB\n",
        "proc/uptime": "200100.50 1000.0\n",
        "proc/sys/kernel/hostname": "kitchen-pi\n",
        "proc/net/fib_trie": "Main:\n     |-- 192.168.1.20\n        /32 host LOCAL\n"
                             "     |-- 127.0.0.1\n        /32 host LOCAL\n",
        "proc/net/route": "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
                          "eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n",
        "proc/net/if_inet6": "fe800000000000000000000000000020 02 40 20 80     eth0\n",
        "proc/812/stat": "812 (ffmpeg) S 1 812 812 0 -1 4194304 100 0 0 0 9000 1000 0 0 20 0 1 0 100 1000000 "
                         "60000 0\n",
        "proc/99/stat": "99 (sshd) S 1 99 99 0 -1 4194304 100 0 0 0 10 10 0 0 20 0 1 0 100 1000000 2000 0\n",
        "sys/class/rtc/rtc0/since_epoch": "1783080000\n",
        "data/x": "x",
    }
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)


HEADLINE = {"get_cpu_temperature": lambda r: [r["temperature"]], "get_load_average": lambda r: [r["load1"]],
            "get_memory_usage": lambda r: [r["used_mb"]], "get_disk_usage": lambda r: [r["used_gb"]],
            "get_uptime": lambda r: [r["text"]], "get_datetime": lambda r: [r["time"]],
            "get_hostname": lambda r: [r["hostname"]],
            "get_network_addresses": lambda r: [e["ipv4"] for e in r["interfaces"] if "ipv4" in e][:1],
            "get_top_processes": lambda r: [p["name"] for p in r["processes"]][:1]}


def headline(name, result):
    """The values an answer must quote ([] when the result is an error)."""
    try:
        r = json.loads(result)
    except ValueError:
        return []
    if "error" in r:
        return []
    return [json.dumps(v) if isinstance(v, float) else str(v) for v in HEADLINE[name](r)]


def replay(msgs):
    """The messages with ids on replayed calls (the API wants them)."""
    out = []
    for k, msg in enumerate(msgs):
        msg = dict(msg)
        if msg.get("tool_calls"):
            msg["tool_calls"] = [dict(c, id="call_h%d_%d" % (k, j)) for j, c in enumerate(msg["tool_calls"])]
        if msg["role"] == "tool":
            msg["tool_call_id"] = "call_h%d_0" % (k - 1)
        out.append(msg)
    return out


def unconstrained(a):
    prompts = tools_dialogues.eval_prompts(1234 + 2, 300)[:a.n]
    schemas = tools_dialogues.schemas()
    m = duet.Model(a.model, threads=a.threads)
    right = parsed = 0
    lat, rows = [], []
    for p in prompts:
        text = m.render(replay(p["messages"]), tools=tools_dialogues.tool_list(False))
        s = m.session(adapter=a.adapter)
        t0 = time.perf_counter()
        out = s.generate(text, max_tokens=a.max_tokens, temperature=0, stop=["<|im_end|>"])
        lat.append(time.perf_counter() - t0)
        s.close()
        calls = parse_calls(out)
        parsed += calls is not None and len(calls) > 0
        ok = calls is not None and sorted(c["name"] for c in calls) == sorted(c["name"] for c in p["calls"])
        for c in calls or []:
            try:
                jsonschema.validate(c["arguments"], schemas[c["name"]])
            except (jsonschema.ValidationError, KeyError):
                ok = False
        right += ok
        rows.append({"messages": p["messages"], "want": p["calls"], "out": out, "right": bool(ok)})
    m.close()
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)
    n = len(prompts)
    print("unconstrained first round: %d prompts, right tools with valid arguments %d (%.1f%%), some call parsed "
          "%d, median %.2f s" % (n, right, 100.0 * right / n, parsed, statistics.median(lat)))


class _Call(_lib.ctypes.Structure):
    _fields_ = [("id", _lib.ctypes.c_char_p), ("name", _lib.ctypes.c_char_p), ("arguments", _lib.ctypes.c_char_p)]


def first_round(m, a, p, tools_json):
    """The first generate under duet's tool-call mask: [(name, arguments)]."""
    L = _lib.lib
    s = m.session(adapter=a.adapter)
    h = s._handle()
    if L.duet_session_set_tools(h, tools_json.encode()):
        raise RuntimeError("set_tools: %s" % s._errmsg())
    for msg in replay(p["messages"]):
        if L.duet_session_append_message_json(h, json.dumps(msg).encode()):
            raise RuntimeError("replay: %s" % s._errmsg())
    s._mode = "chat"
    s.generate(None, max_tokens=a.max_tokens, temperature=0)
    calls = []
    for i in range(L.duet_session_n_tool_calls(h)):
        c = L.duet_session_tool_call(h, i).contents
        calls.append((c.name.decode(), json.loads(c.arguments.decode())))
    s.close()
    return calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="build/demo.duet")
    ap.add_argument("--adapter", default="tools")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--unconstrained", action="store_true")
    a = ap.parse_args()
    if a.unconstrained:
        return unconstrained(a)
    L = _lib.lib
    P = _lib.ctypes.c_void_p
    L.duet_session_set_tools.restype, L.duet_session_set_tools.argtypes = _lib.ctypes.c_int, [P, _lib.ctypes.c_char_p]
    L.duet_session_n_tool_calls.restype, L.duet_session_n_tool_calls.argtypes = _lib.ctypes.c_int, [P]
    L.duet_session_tool_call.restype = _lib.ctypes.POINTER(_Call)
    L.duet_session_tool_call.argtypes = [P, _lib.ctypes.c_int]
    prompts = tools_dialogues.eval_prompts(1234 + 2, 300)[:a.n]
    schemas = tools_dialogues.schemas()
    key = lambda name, args: json.dumps({"name": name, "arguments": args}, sort_keys=True)
    root = tempfile.mkdtemp(prefix="duet-agent-eval-")
    try:
        fake_machine(root)
        m = duet.Model(a.model, threads=a.threads)
        rows = []
        for i, p in enumerate(prompts):
            # the first round alone: which calls, scored as the unconstrained run is
            s = m.session(adapter=a.adapter)
            agent = duet.Agent(s, builtin=True, sysroot=root, max_steps=4)
            tools_json = json.dumps(agent.tools)
            calls = first_round(m, a, p, tools_json)
            right = sorted(c[0] for c in calls) == sorted(c["name"] for c in p["calls"])
            exact = sorted(key(*c) for c in calls) == sorted(key(c["name"], c["arguments"]) for c in p["calls"])
            valid = True
            for name, args in calls:
                try:
                    jsonschema.validate(args, schemas[name])
                except (jsonschema.ValidationError, KeyError):
                    valid = False
            # the whole loop on a fresh session
            h = s._handle()
            msgs = p["messages"]
            for msg in replay(msgs[:-1]):  # earlier turns
                if L.duet_session_append_message_json(h, json.dumps(msg).encode()):
                    raise RuntimeError("replay: %s" % s._errmsg())
            t0 = time.perf_counter()
            res = agent.run(msgs[-1]["content"], max_tokens=a.max_tokens, temperature=0)
            dt = time.perf_counter() - t0
            for st in res.steps:
                try:
                    jsonschema.validate(st.arguments, schemas[st.tool])
                except (jsonschema.ValidationError, KeyError):
                    valid = False
            covered = {c["name"] for c in p["calls"]} <= {st.tool for st in res.steps}
            need = [v for st in res.steps for v in headline(st.tool, st.result)]
            answered = bool(res.steps) and all(v in res.answer for v in need)
            rows.append({"i": i, "question": msgs[-1]["content"], "want": p["calls"], "first_round": calls,
                         "steps": [{"tool": st.tool, "arguments": st.arguments, "result": st.result} for st in res.steps],
                         "answer": res.answer, "right": right and valid, "exact": exact, "valid": valid,
                         "calls": len(calls) + len(res.steps), "covered": covered, "answered": answered,
                         "seconds": dt, "n_ctx": s.n_tokens})
            agent.close()
            s.close()
            if (i + 1) % 25 == 0:
                print("%d/%d: right %d, answered %d" % (i + 1, len(prompts), sum(r["right"] for r in rows),
                                                       sum(r["answered"] for r in rows)), file=sys.stderr)
        m.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = len(rows)
    lat = sorted(r["seconds"] for r in rows)
    cnt = lambda k: sum(1 for r in rows if r[k])
    print("first round under the mask: %d prompts, right tools with valid arguments %d (%.1f%%), exact arguments "
          "%d (%.1f%%); calls valid under jsonschema %d/%d (first rounds and loops)" % (
              n, cnt("right"), 100.0 * cnt("right") / n, cnt("exact"), 100.0 * cnt("exact") / n,
              sum(r["calls"] for r in rows if r["valid"]), sum(r["calls"] for r in rows)))
    print("loop: every expected tool ran %d (%.1f%%), the answer quotes every result %d (%.1f%%); prompt %.0f tokens "
          "on average; latency median %.2f s, p90 %.2f s, max %.2f s" % (
              cnt("covered"), 100.0 * cnt("covered") / n, cnt("answered"), 100.0 * cnt("answered") / n,
              statistics.mean(r["n_ctx"] for r in rows), statistics.median(lat), lat[int(0.9 * (n - 1))], lat[-1]))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
