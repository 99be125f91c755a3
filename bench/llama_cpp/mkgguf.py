#!/usr/bin/env python3
"""mkgguf.py OUT.gguf q4_0|q8_0|f16 TOKENIZER_JSON - a GGUF file with Qwen2-1.5B's
shapes and random weights (speed benchmarks only; the outputs are noise), so
that llama.cpp can be timed beside duet on the same machine (f16: the input
of llama-quantize for its other types, e.g. Q4_K_M, IQ4_XS, Q3_K_M).
mkgguf.py OUT.gguf lora RANK - a GGUF LoRA adapter for it: f16 A and B of
rank RANK on all seven projections of every layer, alpha = 2 * RANK."""
import json, os, struct, sys

out, qt = sys.argv[1], sys.argv[2]
DIM, LAYERS, HEADS, KV, FF, VOCAB = 1536, 28, 12, 2, 8960, 151936
HD = DIM // HEADS
GGML = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}


def s(x):
    b = x.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


kv = []


def add(key, typ, val):
    kv.append((key, typ, val))


def enc_val(typ, val):
    if typ == "u32": return struct.pack("<I", 4) + struct.pack("<I", val)
    if typ == "i32": return struct.pack("<I", 5) + struct.pack("<i", val)
    if typ == "f32": return struct.pack("<I", 6) + struct.pack("<f", val)
    if typ == "str": return struct.pack("<I", 8) + s(val)
    if typ == "astr": return struct.pack("<I", 9) + struct.pack("<IQ", 8, len(val)) + b"".join(s(v) for v in val)
    if typ == "ai32": return struct.pack("<I", 9) + struct.pack("<IQ", 5, len(val)) + struct.pack("<%di" % len(val), *val)
    raise ValueError(typ)


if qt == "lora":
    R = int(sys.argv[3])
    add("general.architecture", "str", "qwen2")
    add("general.type", "str", "adapter")
    add("adapter.type", "str", "lora")
    add("adapter.lora.alpha", "f32", float(2 * R))
    tensors = []
    shapes = {"attn_q": (DIM, DIM), "attn_k": (DIM, KV * HD), "attn_v": (DIM, KV * HD), "attn_output": (DIM, DIM),
              "ffn_gate": (DIM, FF), "ffn_up": (DIM, FF), "ffn_down": (FF, DIM)}
    for l in range(LAYERS):
        for name, (cin, cout) in shapes.items():
            tensors += [("blk.%d.%s.weight.lora_a" % (l, name), [cin, R], "f16"),
                        ("blk.%d.%s.weight.lora_b" % (l, name), [R, cout], "f16")]
else:
    tok = json.load(open(sys.argv[3]))
    vocab = tok["model"]["vocab"]
    tokens = [None] * VOCAB
    types = [1] * VOCAB
    for t, i in vocab.items():
        tokens[i] = t
    for a in tok["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a.get("special") else 4
    for i in range(VOCAB):
        if tokens[i] is None:
            tokens[i] = "[PAD%d]" % i
            types[i] = 5
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]

    add("general.architecture", "str", "qwen2")
    add("general.name", "str", "duet-synth-qwen2-1.5b")
    add("general.file_type", "u32", {"q4_0": 2, "q8_0": 7, "f16": 1}[qt])
    add("qwen2.block_count", "u32", LAYERS)
    add("qwen2.context_length", "u32", 32768)
    add("qwen2.embedding_length", "u32", DIM)
    add("qwen2.feed_forward_length", "u32", FF)
    add("qwen2.attention.head_count", "u32", HEADS)
    add("qwen2.attention.head_count_kv", "u32", KV)
    add("qwen2.rope.freq_base", "f32", 1000000.0)
    add("qwen2.attention.layer_norm_rms_epsilon", "f32", 1e-6)
    add("tokenizer.ggml.model", "str", "gpt2")
    add("tokenizer.ggml.pre", "str", "qwen2")
    add("tokenizer.ggml.tokens", "astr", tokens)
    add("tokenizer.ggml.token_type", "ai32", types)
    add("tokenizer.ggml.merges", "astr", merges)
    add("tokenizer.ggml.bos_token_id", "u32", 151643)
    add("tokenizer.ggml.eos_token_id", "u32", 151645)
    add("tokenizer.ggml.padding_token_id", "u32", 151643)

    tensors = [("token_embd.weight", [DIM, VOCAB], qt), ("output_norm.weight", [DIM], "f32")]
    for l in range(LAYERS):
        p = "blk.%d." % l
        tensors += [(p + "attn_norm.weight", [DIM], "f32"),
                    (p + "attn_q.weight", [DIM, DIM], qt), (p + "attn_q.bias", [DIM], "f32"),
                    (p + "attn_k.weight", [DIM, KV * HD], qt), (p + "attn_k.bias", [KV * HD], "f32"),
                    (p + "attn_v.weight", [DIM, KV * HD], qt), (p + "attn_v.bias", [KV * HD], "f32"),
                    (p + "attn_output.weight", [DIM, DIM], qt),
                    (p + "ffn_norm.weight", [DIM], "f32"),
                    (p + "ffn_gate.weight", [DIM, FF], qt), (p + "ffn_up.weight", [DIM, FF], qt),
                    (p + "ffn_down.weight", [FF, DIM], qt)]


def nbytes(shape, t):
    n = 1
    for d in shape: n *= d
    if t == "f32": return 4 * n
    if t == "f16": return 2 * n
    return n // 32 * (18 if t == "q4_0" else 34)


# random blocks with a small f16 scale (0.01), repeated: the speed is what counts
d = struct.pack("<e", 0.01)
blk = 18 if qt == "q4_0" else 34
pattern = b"".join(d + os.urandom(blk - 2) for _ in range(8192))
small = b"".join(struct.pack("<e", (b - 128) / 4096) for b in os.urandom(65536))  # f16 LoRA values
ones = struct.pack("<f", 1.0) * 8960

ALIGN = 32
hdr = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
for k, t, v in kv:
    hdr += s(k) + enc_val(t, v)
off = 0
infos = b""
for name, shape, t in tensors:
    infos += s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", x) for x in shape)
    infos += struct.pack("<IQ", GGML[t], off)
    off += (nbytes(shape, t) + ALIGN - 1) // ALIGN * ALIGN
with open(out, "wb") as f:
    f.write(hdr + infos)
    f.write(b"\0" * ((-f.tell()) % ALIGN))
    for name, shape, t in tensors:
        n = nbytes(shape, t)
        if t == "f32":
            data = (ones * (n // len(ones) + 1))[:n]
        elif t == "f16":
            data = (small * (n // len(small) + 1))[:n]
        else:
            data = (pattern * (n // len(pattern) + 1))[:n]
        f.write(data)
        f.write(b"\0" * ((-n) % ALIGN))
print(out, os.path.getsize(out) / 1e9, "GB")
