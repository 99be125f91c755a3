#!/bin/sh
# Constrained decoding property test: hundreds of random JSON schemas of the
# supported subset, each answered by the tiny random model at temperature 1
# through libduet.so (one model, one session per schema), and every output
# checked by an independent validator, Debian's python3-jsonschema. Budgets
# are random too (some tight): an output must be complete and valid whatever
# the budget; a budget below the shortest valid value must be refused.
BUILD=$(dirname "${DUET:-build/duet}")
N=${SCHEMA_CASES:-200}
PRE=
if ldd "$BUILD/libduet.so" 2>/dev/null | grep -q libasan; then # the ASan runtime must come first in python
    PRE=$(${CC:-cc} -print-file-name=libasan.so)
    export ASAN_OPTIONS=detect_leaks=0:${ASAN_OPTIONS:-}
    N=${SCHEMA_CASES:-40}
fi
LD_PRELOAD="$PRE" python3 - "$BUILD/libduet.so" "$N" <<'PY'
import ctypes, json, random, sys
try:
    import jsonschema
except ImportError:
    print("schema_property: skipped (no python3-jsonschema)"); print("schema_property: 0 passed, 0 failed"); sys.exit(0)
lib = ctypes.CDLL(sys.argv[1]); N = int(sys.argv[2])
P, I, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
class Opts(ctypes.Structure):
    _fields_ = [("adapter", S), ("n_ctx", I), ("kv_type", I), ("temperature", ctypes.c_float), ("top_k", I),
                ("top_p", ctypes.c_float), ("min_p", ctypes.c_float), ("repetition_penalty", ctypes.c_float),
                ("frequency_penalty", ctypes.c_float), ("presence_penalty", ctypes.c_float), ("seed", ctypes.c_uint64),
                ("max_tokens", I), ("ignore_eos", I), ("stop", S * 8), ("stop_ids", I * 8), ("n_stop_ids", I)]
lib.duet_model_open.argtypes = [ctypes.POINTER(P), S, P, ctypes.c_char_p, ctypes.c_size_t]
lib.duet_session_options_default.argtypes = [ctypes.POINTER(Opts)]
lib.duet_session_create.argtypes = [P, ctypes.POINTER(Opts), ctypes.POINTER(P)]
lib.duet_session_set_json_schema.argtypes = [P, S]
lib.duet_session_append_message.argtypes = [P, S, S]
lib.duet_generate_all.argtypes = [P, ctypes.POINTER(ctypes.c_void_p)]
lib.duet_session_errmsg.argtypes = [P]; lib.duet_session_errmsg.restype = S
lib.duet_session_close.argtypes = [P]; lib.duet_model_close.argtypes = [P]
libc = ctypes.CDLL(None); libc.free.argtypes = [ctypes.c_void_p]
m = P(); err = ctypes.create_string_buffer(512)
if lib.duet_model_open(ctypes.byref(m), b"tests/fixtures/models/tiny-qwen2", None, err, 512):
    print("open:", err.value); print("schema_property: 0 passed, 1 failed"); sys.exit(1)
rng = random.Random(17)
WORDS = ["city", "n", "unit", "tags", "a b", "é", "x\"y", "deep", "on", "list"]

def scalar():
    t = rng.choice(["string", "integer", "number", "boolean", "null", "enum", "const"])
    if t == "string":
        s = {"type": "string"}
        if rng.random() < 0.5:
            lo = rng.randint(0, 4); s["minLength"] = lo
            if rng.random() < 0.6: s["maxLength"] = lo + rng.randint(0, 6)
        return s
    if t == "number" and rng.random() < 0.3:  # decimal bounds, often no integer between them
        lo = round(rng.uniform(-20, 20), rng.choice([1, 2, 3])); hi = round(lo + rng.uniform(0.001, 1.5), 3)
        s = {"type": "number"}
        s["minimum" if rng.random() < 0.5 else "exclusiveMinimum"] = lo
        s["maximum" if rng.random() < 0.5 else "exclusiveMaximum"] = hi
        return s
    if t in ("integer", "number"):
        s = {"type": t}
        if rng.random() < 0.6:
            lo = rng.randint(-50, 50); hi = lo + rng.randint(0 if t == "integer" else 1, 100)
            if rng.random() < 0.5: s["minimum"] = lo
            else: s["exclusiveMinimum"] = lo - 1
            if rng.random() < 0.5: s["maximum"] = hi
            else: s["exclusiveMaximum"] = hi + 1
        return s
    if t == "enum":
        return {"enum": rng.sample(["red", "green", 1, 2.5, None, True, "a\"b", {"k": [1]}], rng.randint(1, 4))}
    if t == "const":
        return {"const": rng.choice(["x", 0, False, [1, "y"]])}
    return {"type": t}

def schema(depth=0):
    r = rng.random()
    if depth > 2 or r < 0.35: return scalar()
    if r < 0.65:
        props = {}
        for k in rng.sample(WORDS, rng.randint(0, 4)): props[k] = schema(depth + 1)
        s = {"type": "object", "properties": props}
        if props: s["required"] = [k for k in props if rng.random() < 0.5]
        if rng.random() < 0.5: s["additionalProperties"] = False
        elif not props and rng.random() < 0.5: s["additionalProperties"] = schema(depth + 1)
        return s
    if r < 0.85:
        s = {"type": "array", "items": schema(depth + 1)}
        if rng.random() < 0.5: s["minItems"] = rng.randint(0, 2)
        if rng.random() < 0.5: s["maxItems"] = s.get("minItems", 0) + rng.randint(0, 3)
        return s
    if r < 0.93: return {"anyOf": [schema(depth + 1), schema(depth + 1)]}
    return {"type": rng.sample(["string", "integer", "boolean", "null", "array"], 2)}

passed = failed = refused = 0
for i in range(N):
    sch = schema()
    o = Opts(); lib.duet_session_options_default(ctypes.byref(o))
    o.temperature = 1.0; o.seed = i; o.n_ctx = 1024
    o.max_tokens = rng.choice([12, 30, 60, 200])
    s = P()
    if lib.duet_session_create(m, ctypes.byref(o), ctypes.byref(s)):
        failed += 1; print("session create failed"); continue
    rc = lib.duet_session_set_json_schema(s, json.dumps(sch).encode())
    if rc:
        failed += 1; print("schema refused:", json.dumps(sch), lib.duet_session_errmsg(s)); lib.duet_session_close(s); continue
    lib.duet_session_append_message(s, b"user", b"Answer in JSON.")
    out = ctypes.c_void_p()
    rc = lib.duet_generate_all(s, ctypes.byref(out))
    if rc < 0:
        msg = lib.duet_session_errmsg(s).decode()
        if rc == -1 and "max_tokens" in msg: refused += 1
        else: failed += 1; print("generate failed:", json.dumps(sch), msg)
    else:
        text = ctypes.string_at(out.value).decode("utf-8")
        try:
            jsonschema.validate(json.loads(text), sch); passed += 1
        except Exception as e:
            failed += 1; print("INVALID", json.dumps(sch), "->", repr(text), str(e)[:200])
    libc.free(out); lib.duet_session_close(s)
lib.duet_model_close(m)
print("%d schemas: %d outputs valid, %d budgets below the shortest value refused, %d failures" % (N, passed, refused, failed))
ok = failed == 0 and passed >= N // 2
print("schema_property: %d passed, %d failed" % (passed if ok else 0, failed + (0 if ok else 1)))
sys.exit(0 if ok else 1)
PY
