#!/usr/bin/env python3
"""train.py - the GPU part of train/: from the corpus file (corpus.py) to the
shipped demo model, its adapters, the evaluation and the goldens.

    python3 train/train.py --corpus corpus.jsonl.xz --out OUT [--seed 1234]

Steps (each logged with its time; each training phase has a time budget that
stops it early, logged, so a run always ends and writes its outputs):
  1. data: held-out documents (by a hash of the source name), generated
     dialogues for `tools`, `shell` and the base's chat mix, held-out sets;
  2. tokenizer: byte-level BPE (Qwen2's split regex, NFC), VOCAB entries with
     <|endoftext|> <|im_start|> <|im_end|> <tool_call> </tool_call>;
  3. base: Qwen2ForCausalLM from scratch (hidden 256, intermediate 768, head_dim
     64, tied embedding), saved bf16 with save_pretrained;
  4. adapters: PEFT LoRA `tools` and `shell` on the saved (bf16-rounded) base;
  5. evaluation in float32: held-out NLL of every model on every domain, the
     tool-call exact match on the held-out prompts (greedy);
  6. goldens for duet's tests (logits, greedy ids, tokenizer cases, chat
     template renderings) and the evaluation sets for duet (train/eval_duet.py).
OUT gets: demo/{base,tools,shell}, fixtures/, eval/, calib.jsonl, metrics.json, train.log.
"""
import argparse
import copy
import hashlib
import json
import lzma
import math
import multiprocessing as mp
import os
import random
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import base_chat  # noqa: E402
import render  # noqa: E402
import shell_dialogues  # noqa: E402
import tools_dialogues  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]
EOT, IM_START, IM_END = 0, 1, 2
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
              r"|\s+(?!\S)|\s+")
BL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}

T0 = time.time()
LOG = None


def log(*a):
    s = "[%6.1fs] " % (time.time() - T0) + " ".join(str(x) for x in a)
    print(s, flush=True)
    if LOG:
        LOG.write(s + "\n")
        LOG.flush()


def heldout_doc(src):
    return int(hashlib.sha256(src.encode()).hexdigest(), 16) % 100 < 2


def write_json(path, obj, indent=None):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")


# ---------------------------------------------------------------- tokenizer
def train_tokenizer(texts, vocab):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=SPECIALS, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=tr, length=len(texts))
    # the same JSON layout as Qwen2's tokenizer.json (post_processor/decoder ByteLevel with
    # these flags; <tool_call> and </tool_call> added but not special, as in Qwen2.5)
    j = json.loads(tok.to_str())
    j["normalizer"] = {"type": "NFC"}
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN_SPLIT}, "behavior": "Isolated", "invert": False}, dict(BL)]}
    j["post_processor"] = dict(BL)
    j["decoder"] = dict(BL)
    for a in j["added_tokens"]:
        a["special"] = a["content"] not in ("<tool_call>", "</tool_call>")
        a["normalized"] = False
    for i, s in enumerate(SPECIALS):
        assert j["model"]["vocab"][s] == i, (s, j["model"]["vocab"].get(s))
    return Tokenizer.from_str(json.dumps(j, ensure_ascii=False)), j


def tokenizer_config():
    dec = {}
    for i, s in enumerate(SPECIALS):
        dec[str(i)] = {"content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                       "special": s not in ("<tool_call>", "</tool_call>")}
    return {"add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": dec,
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "bos_token": None,
            "chat_template": render.QWEN25_TEMPLATE, "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 32768, "pad_token": "<|endoftext|>",
            "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}


# ---------------------------------------------------------------- data
def _render_one(args):
    conv, gen = args
    return render.render(conv, gen)


def render_all(convs, pool, gen=False):
    return pool.map(_render_one, [(c, gen) for c in convs], chunksize=64)


def encode_masked(tok, texts):
    """(ids, mask) per text: mask 1 on the tokens of assistant turns."""
    encs = tok.encode_batch(texts, add_special_tokens=False)
    out = []
    for t, e in zip(texts, encs):
        spans = render.assistant_spans(t)
        st = np.array([o[0] for o in e.offsets], np.int64)
        m = np.zeros(len(e.ids), np.uint8)
        for s0, s1 in spans:
            m[(st >= s0) & (st < s1)] = 1
        out.append((np.array(e.ids, np.int32), m))
    return out


# ---------------------------------------------------------------- training
def lr_at(step, total, peak, warm):
    if step < warm:
        return peak * (step + 1) / warm
    p = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def make_opt(torch, model, lr, wd):
    dec = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    nodec = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": dec, "weight_decay": wd}, {"params": nodec, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)


def train_base(torch, model, stream, args):
    seq = args.seq
    n = (len(stream) - 1) // seq
    data = torch.from_numpy(stream[:n * seq].astype(np.int64).reshape(n, seq))
    g = torch.Generator().manual_seed(args.seed)
    opt = make_opt(torch, model, args.base_lr, 0.1)
    model.train()
    steps, B = args.base_steps, args.base_batch
    order = torch.randperm(n, generator=g)
    pos, t0, done = 0, time.time(), 0
    log("base: %d sequences of %d tokens (%.1fM tokens), %d steps of %d, %.2f epochs" %
        (n, seq, n * seq / 1e6, steps, B, steps * B / n))
    for step in range(steps):
        if pos + B > n:
            order, pos = torch.randperm(n, generator=g), 0
        x = data[order[pos:pos + B]].cuda(non_blocking=True)
        pos += B
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step, steps, args.base_lr, 200)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        done = step + 1
        if step % 200 == 0 or step == steps - 1:
            log("base step %d/%d loss %.4f lr %.2e (%.1f steps/s)" % (step, steps, loss.item(), opt.param_groups[0]["lr"],
                                                                    (step + 1) / (time.time() - t0)))
        if time.time() - t0 > args.base_budget:
            log("base: time budget %ds reached, stopped at step %d of %d" % (args.base_budget, done, steps))
            break
    return done


def batches_padded(torch, items, B, g, maxlen):
    """Random batches of (ids, mask) items, right-padded to a multiple of 64."""
    order = torch.randperm(len(items), generator=g).tolist()
    for i in range(0, len(order) - B + 1, B):
        sel = [items[j] for j in order[i:i + B]]
        L = min(maxlen, max(len(s[0]) for s in sel))
        L = min(maxlen, (L + 63) // 64 * 64)
        x = np.zeros((B, L), np.int64)
        am = np.zeros((B, L), np.int64)
        lab = np.full((B, L), -100, np.int64)
        for r, (ids, m) in enumerate(sel):
            k = min(L, len(ids))
            x[r, :k] = ids[:k]
            am[r, :k] = 1
            lab[r, :k] = np.where(m[:k] > 0, ids[:k], -100)
        yield torch.from_numpy(x), torch.from_numpy(am), torch.from_numpy(lab)


def train_lora(torch, model, items, steps, B, lr, budget, seed, name, maxlen):
    g = torch.Generator().manual_seed(seed)
    opt = make_opt(torch, model, lr, 0.0)
    model.train()
    it = batches_padded(torch, items, B, g, maxlen)
    t0, done = time.time(), 0
    log("%s: %d dialogues, %d steps of %d (%.2f epochs)" % (name, len(items), steps, B, steps * B / len(items)))
    for step in range(steps):
        try:
            x, am, lab = next(it)
        except StopIteration:
            it = batches_padded(torch, items, B, g, maxlen)
            x, am, lab = next(it)
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step, steps, lr, 30)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=x.cuda(), attention_mask=am.cuda(), labels=lab.cuda()).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        done = step + 1
        if step % 100 == 0 or step == steps - 1:
            log("%s step %d/%d loss %.4f (%.1f steps/s)" % (name, step, steps, loss.item(), (step + 1) / (time.time() - t0)))
        if time.time() - t0 > budget:
            log("%s: time budget %ds reached, stopped at step %d of %d" % (name, budget, done, steps))
            break
    return done


# ---------------------------------------------------------------- evaluation
def nll_of(torch, model, items):
    """Mean NLL (nats per token) over the masked tokens of items, float32."""
    model.eval()
    tot, cnt = 0.0, 0
    per = []
    with torch.no_grad():
        for ids, m in items:
            x = torch.tensor(ids[None].astype(np.int64)).cuda()
            lg = model(input_ids=x).logits[0].float()
            lp = torch.log_softmax(lg[:-1], -1)
            tgt = x[0, 1:]
            nl = -lp.gather(1, tgt[:, None])[:, 0]
            mm = torch.tensor(m[1:].astype(np.float32)).cuda()
            s, c = float((nl * mm).sum()), float(mm.sum())
            tot += s
            cnt += c
            per.append([s, c])
    return tot / max(cnt, 1), per


def greedy_batch(torch, model, prompts, steps, stop_ids):
    """Greedy continuation of each prompt (lists of ids), batched with left
    padding and explicit position ids, every step recomputed without a cache."""
    model.eval()
    outs = [[] for _ in prompts]
    B = 64
    with torch.no_grad():
        for b0 in range(0, len(prompts), B):
            group = prompts[b0:b0 + B]
            seqs = [list(p) for p in group]
            live = [True] * len(group)
            for _ in range(steps):
                L = max(len(s) for s in seqs)
                x = torch.zeros((len(seqs), L), dtype=torch.long)
                am = torch.zeros((len(seqs), L), dtype=torch.long)
                for r, s in enumerate(seqs):
                    x[r, L - len(s):] = torch.tensor(s)
                    am[r, L - len(s):] = 1
                pos = (am.cumsum(-1) - 1).clamp(min=0)
                lg = model(input_ids=x.cuda(), attention_mask=am.cuda(), position_ids=pos.cuda()).logits[:, -1]
                nxt = lg.float().argmax(-1).tolist()
                for r, t in enumerate(nxt):
                    if live[r]:
                        seqs[r].append(t)
                        outs[b0 + r].append(t)
                        if t in stop_ids:
                            live[r] = False
                    else:
                        seqs[r].append(EOT)
                if not any(live):
                    break
    return outs


def parse_calls(text):
    """Tool calls in a generated text: [{"name", "arguments"}], None if malformed."""
    calls = []
    for m in re.finditer(r"<tool_call>\s*(.*?)\s*</tool_call>", text, re.S):
        try:
            j = json.loads(m.group(1))
        except ValueError:
            return None
        if not isinstance(j, dict) or "name" not in j:
            return None
        calls.append({"name": j["name"], "arguments": j.get("arguments", {})})
    return calls


def score_calls(got, want):
    """(exact, valid): exact = same calls (names and arguments, any order);
    valid = same tool names (any order) and every argument object valid
    against its tool's schema (the issue's criterion)."""
    if got is None or len(got) != len(want):
        return False, False
    key = lambda c: json.dumps(c, sort_keys=True)
    exact = sorted(map(key, got)) == sorted(map(key, want))
    names_ok = sorted(c["name"] for c in got) == sorted(c["name"] for c in want)
    return exact, names_ok and all(schema_ok(c) for c in got)


SCHEMAS = tools_dialogues.schemas()


def schema_ok(call):
    """A small JSON-schema check for the tools' argument objects (types, enums, ranges, no extra keys)."""
    s = SCHEMAS.get(call["name"])
    a = call["arguments"]
    if s is None or not isinstance(a, dict):
        return False
    for k, v in a.items():
        p = s["properties"].get(k)
        if p is None:
            return False
        if p["type"] == "string" and not isinstance(v, str):
            return False
        if p["type"] == "integer" and (not isinstance(v, int) or isinstance(v, bool)):
            return False
        if "enum" in p and v not in p["enum"]:
            return False
        if "minimum" in p and v < p["minimum"] or "maximum" in p and v > p["maximum"]:
            return False
    return True


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--base-steps", type=int, default=3000)
    ap.add_argument("--base-batch", type=int, default=64)
    ap.add_argument("--base-lr", type=float, default=2e-3)
    ap.add_argument("--base-budget", type=int, default=180)
    ap.add_argument("--tools-n", type=int, default=32000)
    ap.add_argument("--tools-steps", type=int, default=1600)
    ap.add_argument("--shell-n", type=int, default=24000)
    ap.add_argument("--shell-steps", type=int, default=500)
    ap.add_argument("--lora-lr", type=float, default=2e-3)
    ap.add_argument("--lora-budget", type=int, default=135)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--tok-mb", type=float, default=24.0, help="MB of text the tokenizer is trained on")
    ap.add_argument("--chat-frac", type=float, default=0.06, help="share of the base's tokens that are chat")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    global LOG
    LOG = open(os.path.join(a.out, "train.log"), "w")
    metrics = {"seed": a.seed, "args": vars(a)}
    try:
        run(a, metrics)
    finally:
        metrics["seconds"] = round(time.time() - T0, 1)
        write_json(os.path.join(a.out, "metrics.json"), metrics, indent=1)
        log("done in %.1fs" % (time.time() - T0))


def run(a, metrics):
    import torch
    import transformers
    import peft
    import tokenizers
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    vers = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "tokenizers": tokenizers.__version__, "gpu": torch.cuda.get_device_name(0)}
    metrics["made_with"] = vers
    log("versions", json.dumps(vers))
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    pool = mp.Pool(min(16, os.cpu_count() or 4))

    # 1. data
    docs = []
    with lzma.open(a.corpus, "rt", encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line))
    train_docs = [d for d in docs if not heldout_doc(d["src"])]
    held_docs = [d for d in docs if heldout_doc(d["src"])]
    log("corpus: %d documents (%.1f MB), %d held out" % (len(docs), sum(len(d["text"]) for d in docs) / 1e6,
                                                        len(held_docs)))
    tools_train = tools_dialogues.train_set(a.seed + 1, a.tools_n)
    tools_prompts = tools_dialogues.eval_prompts(a.seed + 2, 300)
    tools_held = tools_dialogues.eval_dialogues(a.seed + 3, 48)
    shell_train = shell_dialogues.train_set(train_docs, a.seed + 4, a.shell_n)
    shell_held = shell_dialogues.eval_dialogues(docs, a.seed + 5, 48)
    chat = base_chat.chat_set(train_docs, a.seed + 6, 12000)
    log("dialogues: tools %d (+%d held-out prompts, %d held-out dialogues), shell %d (+%d held out), base chat %d" %
        (len(tools_train), len(tools_prompts), len(tools_held), len(shell_train), len(shell_held), len(chat)))
    r_tools = render_all(tools_train, pool)
    r_shell = render_all(shell_train, pool)
    r_chat = render_all(chat, pool)
    r_tools_held = render_all(tools_held, pool)
    r_shell_held = render_all(shell_held, pool)
    r_prompts = render_all(tools_prompts, pool, gen=True)
    log("rendered; a tools dialogue is %d characters on average" % (sum(map(len, r_tools)) // len(r_tools)))

    # 2. tokenizer
    rng = random.Random(a.seed)
    sample, size = [], 0
    shuffled = train_docs[:]
    rng.shuffle(shuffled)
    for d in shuffled:
        if size > a.tok_mb * 1e6:
            break
        sample.append(d["text"])
        size += len(d["text"])
    sample += rng.sample(r_tools, 1500) + rng.sample(r_shell, 3000) + rng.sample(r_chat, 3000)
    tok, tok_json = train_tokenizer(sample, a.vocab)
    log("tokenizer: %d entries (trained on %.1f MB)" % (tok.get_vocab_size(), size / 1e6))
    out_base = os.path.join(a.out, "demo", "base")
    os.makedirs(out_base, exist_ok=True)
    write_json(os.path.join(out_base, "tokenizer.json"), tok_json, indent=2)
    # the tokenizer as transformers loads it must give the same ids, and its
    # template the same text as the renderer used for the training data
    checks = ["Hello world", r_tools[0][:600], "  x\n\n\ty <|im_end|> é 🙂 <tool_call>"]
    for cls in ("Qwen2Tokenizer", "PreTrainedTokenizerFast"):
        tc = tokenizer_config()
        tc["tokenizer_class"] = cls
        write_json(os.path.join(out_base, "tokenizer_config.json"), tc, indent=2)
        hf_tok = transformers.AutoTokenizer.from_pretrained(out_base)
        bad = [t for t in checks if hf_tok(t, add_special_tokens=False)["input_ids"] !=
               tok.encode(t, add_special_tokens=False).ids]
        if not bad:
            break
        log("tokenizer: class %s gives other ids for %r" % (cls, bad[0][:80]))
    assert not bad, "no tokenizer class reproduces the tokenizer's ids"
    for c, txt in list(zip(tools_train[:20] + shell_train[:10] + chat[:10], r_tools[:20] + r_shell[:10] + r_chat[:10])):
        ref = hf_tok.apply_chat_template(c["messages"], tools=c.get("tools"), tokenize=False)
        assert ref == txt, "renderer differs from apply_chat_template:\n%r\n%r" % (ref[-300:], txt[-300:])
    log("tokenizer reloaded with AutoTokenizer (%s): same ids, same template renderings" % type(hf_tok).__name__)

    # token data
    ch = 0
    doc_ids = tok.encode_batch([d["text"] for d in train_docs], add_special_tokens=False)
    n_doc_tok = sum(len(e.ids) for e in doc_ids)
    chat_ids = tok.encode_batch(r_chat, add_special_tokens=False)
    pieces = [e.ids for e in doc_ids] + [e.ids for e in chat_ids]
    rng.shuffle(pieces)
    stream = np.fromiter((t for p in pieces for t in (p + [EOT])), dtype=np.int32)
    ch = sum(len(e.ids) for e in chat_ids)
    log("base stream: %.1fM tokens (%.1fM of documents, %.1fM chat; %.2f chars per token)" %
        (len(stream) / 1e6, n_doc_tok / 1e6, ch / 1e6, sum(len(d["text"]) for d in train_docs) / n_doc_tok))
    tools_items = encode_masked(tok, r_tools)
    shell_items = encode_masked(tok, r_shell)
    log("tools dialogues: %.0f tokens on average, max %d; shell %.0f" % (
        np.mean([len(i[0]) for i in tools_items]), max(len(i[0]) for i in tools_items),
        np.mean([len(i[0]) for i in shell_items])))

    # held-out sets (each an (ids, mask) list)
    held_stream = np.fromiter((t for d in held_docs for t in (tok.encode(d["text"]).ids + [EOT])), dtype=np.int32)
    # 48 windows of 256 tokens spread evenly over the held-out documents
    n_win = len(held_stream) // 256
    docs_set = [(held_stream[k * 256:(k + 1) * 256], np.ones(256, np.uint8))
                for k in sorted({i * n_win // 48 for i in range(48)})]
    evalsets = {"docs": docs_set, "tools": encode_masked(tok, r_tools_held), "shell": encode_masked(tok, r_shell_held)}

    # 3. base
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=a.vocab, hidden_size=256, intermediate_size=768, num_hidden_layers=a.layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=EOT, eos_token_id=IM_END,
                      rope_theta=1000000.0, use_sliding_window=False, attention_dropout=0.0)
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict) and rp.get("rope_theta") != 1000000.0:
        rp["rope_theta"] = 1000000.0
    torch.manual_seed(a.seed)
    model = Qwen2ForCausalLM(cfg).cuda()
    nparam = sum(p.numel() for p in model.parameters())
    log("base: %d layers, %.2fM parameters, config head_dim %s" % (a.layers, nparam / 1e6,
                                                                  getattr(cfg, "head_dim", 256 // 4)))
    metrics["parameters"] = nparam
    metrics["base_steps_done"] = train_base(torch, model, stream, a)
    model.to(torch.bfloat16).save_pretrained(out_base, safe_serialization=True)
    gen_cfg = {"bos_token_id": EOT, "pad_token_id": EOT, "do_sample": True, "eos_token_id": [IM_END, EOT],
               "repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
               "transformers_version": transformers.__version__}
    write_json(os.path.join(out_base, "generation_config.json"), gen_cfg, indent=2)
    del model
    torch.cuda.empty_cache()
    log("base saved: %s" % sorted(os.listdir(out_base)))

    def load_base(dtype=torch.float32, attn="sdpa"):
        return Qwen2ForCausalLM.from_pretrained(out_base, dtype=dtype, attn_implementation=attn).cuda()

    # 4. adapters
    from peft import LoraConfig, PeftModel, get_peft_model
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    for name, items, steps, B, maxlen in (("tools", tools_items, a.tools_steps, 32, 1536),
                                           ("shell", shell_items, a.shell_steps, 64, 512)):
        torch.manual_seed(a.seed + 7)
        pm = get_peft_model(load_base(), LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0,
                                                    target_modules=targets, task_type="CAUSAL_LM"))
        metrics[name + "_steps_done"] = train_lora(torch, pm, items, steps, B, a.lora_lr, a.lora_budget, a.seed + 8,
                                                   name, maxlen)
        d = os.path.join(a.out, "demo", name)
        pm.save_pretrained(d)
        ac = json.load(open(os.path.join(d, "adapter_config.json")))
        ac["base_model_name_or_path"] = "../base"
        write_json(os.path.join(d, "adapter_config.json"), ac, indent=2)
        del pm
        torch.cuda.empty_cache()
        log("%s adapter saved: %s" % (name, sorted(os.listdir(d))))

    # 5. evaluation, float32 on the saved files
    def load(name, attn="sdpa"):
        m = load_base(attn=attn)
        if name != "base":
            m = PeftModel.from_pretrained(m, os.path.join(a.out, "demo", name)).cuda()
        return m.eval()

    nll, per_item = {}, {}
    prompt_ids = [tok.encode(p, add_special_tokens=False).ids for p in r_prompts]
    for name in ("base", "tools", "shell"):
        m = load(name)
        nll[name], per_item[name] = {}, {}
        for dom, items in evalsets.items():
            nll[name][dom], per_item[name][dom] = nll_of(torch, m, items)
        log("NLL %-5s: " % name + ", ".join("%s %.4f" % kv for kv in nll[name].items()))
        if name in ("base", "tools"):
            outs = greedy_batch(torch, m, prompt_ids, 64, {IM_END, EOT})
            ex = va = 0
            per = []
            for p, o in zip(tools_prompts, outs):
                text = tok.decode(o, skip_special_tokens=False)
                e, v = score_calls(parse_calls(text), p["calls"])
                ex += e
                va += v
                per.append({"out": text, "exact": e, "valid": v})
            metrics["toolcall_" + name] = {"prompts": len(outs), "exact": ex, "valid": va}
            log("tool calls %s: %d/%d valid (name + schema), %d/%d exact" % (name, va, len(outs), ex, len(outs)))
            if name == "tools":
                tool_results = per
                for q in per[:12]:
                    log("  " + q["out"].replace("\n", "\\n")[:200])
        del m
    metrics["nll_hf"] = nll

    # 6. goldens and evaluation sets for duet
    fx = os.path.join(a.out, "fixtures")
    ev = os.path.join(a.out, "eval")
    os.makedirs(fx, exist_ok=True)
    os.makedirs(ev, exist_ok=True)
    write_json(os.path.join(ev, "evalsets.json"), {
        dom: [{"ids": ids.tolist(), "mask": m.tolist()} for ids, m in items] for dom, items in evalsets.items()})
    write_json(os.path.join(ev, "tool_prompts.json"), [
        {"messages": p["messages"], "tools": p["tools"], "calls": p["calls"], "hf": t}
        for p, t in zip(tools_prompts, tool_results)])
    write_json(os.path.join(ev, "hf_nll.json"), nll, indent=1)
    write_json(os.path.join(ev, "hf_nll_items.json"), per_item)
    make_goldens(torch, tok, hf_tok, load, fx, evalsets, tools_dialogues, vers)
    # calibration set for duet compile: documents and rendered dialogues
    crng = random.Random(a.seed + 9)
    with open(os.path.join(a.out, "calib.jsonl"), "w", encoding="utf-8") as f:
        # small, so that compiling with it stays quick on a 2-core board: 12
        # document excerpts, 6 tool dialogues from their last user turn on
        # (whole ones, ~1000 tokens of tool list each, would outweigh the
        # rest of the statistics), 6 shell
        for d in crng.sample(train_docs, 12):
            f.write(json.dumps({"text": d["text"][:1200]}, ensure_ascii=False) + "\n")
        for t in crng.sample(r_tools, 6):
            f.write(json.dumps({"text": t[t.rfind("<|im_start|>user"):]}, ensure_ascii=False) + "\n")
        for t in crng.sample(r_shell, 6):
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    pool.close()


def make_goldens(torch, tok, hf_tok, load, fx, evalsets, td, vers):
    """tests/fixtures/demo: golden.json (runs base/tools/shell: per prompt the
    ids, per position top-8 ids/logits and logsumexp, greedy ids recomputed
    without a cache), last_logits-RUN.f32 (full last logits of prompt 0),
    tokenizer.json cases, templates.json cases, nll.json (small NLL sets with
    the HF values), all in float32 from the saved files, eager attention."""
    tools = td.tool_list(False)
    man = ("NAME\n       tar - an archiving utility\n\nSYNOPSIS\n       tar -c [-f ARCHIVE] [OPTIONS] [FILE...]\n\n"
           "DESCRIPTION\n       GNU tar is an archiving program designed to store multiple files in a single file")
    q_temp = {"messages": [{"role": "user", "content": "What is the CPU temperature in Fahrenheit?"}], "tools": tools}
    q_two = {"messages": [{"role": "user", "content": "How much memory is free, and what is the uptime?"}],
             "tools": tools}
    q_resp = {"messages": [{"role": "user", "content": "How busy is the CPU?"},
                           {"role": "assistant", "content": "", "tool_calls": [
                               {"type": "function", "function": {"name": "get_load_average", "arguments": {}}}]},
                           {"role": "tool", "name": "get_load_average",
                            "content": "{\"load1\":0.52,\"load5\":0.48,\"load15\":0.4,\"cpus\":4}"}],
              "tools": tools}
    q_ls = {"messages": [{"role": "user", "content": "What does `ls -l` do?"}]}
    q_find = {"messages": [{"role": "user", "content": "How do I find files larger than 100M in /var/log?"}]}
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids
    runs_def = {
        "base": [enc(man), enc("import os\n\ndef main():\n    path = os.path."), enc(render.render(q_ls, True))],
        "tools": [enc(render.render(q_temp, True)), enc(render.render(q_resp, True)), enc(render.render(q_two, True))],
        "shell": [enc(render.render(q_ls, True)), enc(render.render(q_find, True))],
    }
    golden = {"made_with": vers, "model": "demo", "runs": {}}
    for name, prompts in runs_def.items():
        m = load(name, attn="eager")
        entries = []
        with torch.no_grad():
            for pi, ids in enumerate(prompts):
                lg = m(input_ids=torch.tensor([ids]).cuda()).logits[0].float()
                top = lg.topk(8, -1)
                lse = torch.logsumexp(lg, -1)
                if pi == 0:
                    lg[-1].cpu().numpy().astype("<f4").tofile(os.path.join(fx, "last_logits-%s.f32" % name))
                seq, greedy = list(ids), []
                for _ in range(32):
                    t = int(m(input_ids=torch.tensor([seq]).cuda()).logits[0, -1].float().argmax())
                    greedy.append(t)
                    seq.append(t)
                    if t == IM_END:
                        break
                entries.append({"prompt_ids": ids, "top_ids": top.indices.tolist(),
                                "top_logits": top.values.tolist(), "logsumexp": lse.tolist(), "greedy_ids": greedy})
                log("golden %s %d: %d tokens -> %r" % (name, pi, len(ids), tok.decode(greedy, skip_special_tokens=False)[:160]))
        golden["runs"][name] = entries
        del m
    write_json(os.path.join(fx, "golden.json"), golden)
    # NLL sets small enough for make test
    small = {"docs": evalsets["docs"][:3], "tools": evalsets["tools"][:2], "shell": evalsets["shell"][:6]}
    hf = {}
    for name in ("base", "tools", "shell"):
        m = load(name)
        hf[name] = {dom: nll_of(torch, m, items)[0] for dom, items in small.items()}
        del m
    write_json(os.path.join(fx, "nll.json"), {
        "made_with": vers, "hf_nll": hf,
        "sets": {dom: [{"ids": ids.tolist(), "mask": mk.tolist()} for ids, mk in items] for dom, items in small.items()}})
    # tokenizer cases
    texts = ["Hello world", "  leading spaces and\ttabs\n\nnew lines", "ls -la /var/log | grep -i error > out.txt",
             "def f(x):\n    return x ** 2  # square", "Température: 48.5 °C — naïve café", "日本語のテキスト",
             "emoji 🙂🚀 and \u00e9 vs e\u0301 (NFC)", "<|im_start|>user\nhi<|im_end|>\n", "<|im_start without end",
             "<tool_call>\n{\"name\": \"get_uptime\", \"arguments\": {}}\n</tool_call>", "12345678901234567890",
             "   ", "", "x" * 300, "The quick brown fox's \"quotes\" aren't 'single'."]
    cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        cases.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    write_json(os.path.join(fx, "tokenizer_cases.json"), {"made_with": vers, "cases": cases}, indent=1)
    # chat template cases, rendered by transformers
    convs = [
        (q_ls, True), (q_temp, True), (q_two, True), (q_resp, True),
        ({"messages": [{"role": "system", "content": "You are a device assistant."}] + q_resp["messages"] +
          [{"role": "assistant", "content": "The load is 0.52."}], "tools": tools}, False),
        ({"messages": q_two["messages"] + [
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_memory_usage", "arguments": {}}},
                {"type": "function", "function": {"name": "get_uptime", "arguments": {}}}]},
            {"role": "tool", "name": "get_memory_usage", "content": "{\"total_mb\":7812,\"used_mb\":2345,"
             "\"available_mb\":5467,\"percent_used\":30.0}"},
            {"role": "tool", "name": "get_uptime", "content": "{\"seconds\":93784,\"text\":\"1 day, 2 hours, 3 minutes\"}"}],
          "tools": tools}, True),
        ({"messages": [{"role": "user", "content": "Top 3 processes by memory?"},
                       {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                           "name": "get_top_processes", "arguments": {"count": 3, "sort_by": "memory"}}}]}],
          "tools": tools}, False),
        ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                       {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "bye"}]}, True),
    ]
    tcases = []
    for c, gen in convs:
        exp = hf_tok.apply_chat_template(c["messages"], tools=c.get("tools"), tokenize=False,
                                         add_generation_prompt=gen)
        tcases.append({"messages": c["messages"], "tools": c.get("tools"), "add_generation_prompt": gen,
                       "expected": exp})
    write_json(os.path.join(fx, "templates.json"), {"made_with": vers, "cases": tcases}, indent=1)
    log("goldens written: %s" % sorted(os.listdir(fx)))


if __name__ == "__main__":
    main()
