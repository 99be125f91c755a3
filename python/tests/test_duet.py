"""test_duet.py - the Python package against the C library and the CLI:
compile, open, tokenize, generate (greedy equal to `duet generate`), stream,
adapters, threads, errors, sessions' memory."""
import json
import os
import resource
import subprocess
import threading

import pytest

import duet
from conftest import ADAPTERS, BASE, DUET, NAMES


def cli_greedy(model_path, prompt, adapter=None, n=16, eos=False):
    # --kv f16: the library's default KV cache, which the Python package uses
    # (the CLI's default is f32: another summation, another near-tie break)
    cmd = [DUET, "generate", model_path, "--prompt", prompt, "--max-tokens", str(n), "--greedy", "--kv", "f16"]
    if not eos:
        cmd += ["--ignore-eos"]
    if adapter:
        cmd += ["--adapter", adapter]
    out = subprocess.run(cmd, capture_output=True, check=True)
    text = out.stdout.decode("utf-8")
    return text[:-1] if text.endswith("\n") else text


def test_compile_two_adapters_and_calibration(compiled, model):
    assert os.path.getsize(compiled) > 0
    assert sorted(model.adapters) == NAMES
    assert model.vocab_size > 0 and model.max_context > 0


def test_compile_progress_and_errors(tmp_path):
    seen = []
    out = duet.compile(BASE, str(tmp_path / "p.duet"), adapters={NAMES[0]: ADAPTERS[NAMES[0]]}, quant="q8",
                       progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert out == str(tmp_path / "p.duet") and os.path.exists(out)
    assert seen and all(d <= t for _, d, t in seen) and any(d == t for _, d, t in seen)
    with pytest.raises(duet.ArgumentError) as ei:
        duet.compile(BASE, str(tmp_path / "x.duet"), quant="q3-nonsense")
    assert "quant" in str(ei.value)
    with pytest.raises(duet.ArgumentError, match="lora_type"):
        duet.compile(BASE, str(tmp_path / "x.duet"), lora_type="q5")
    with pytest.raises(duet.IOError) as ei:
        duet.compile(str(tmp_path / "missing"), str(tmp_path / "x.duet"))
    assert isinstance(ei.value, OSError)
    with pytest.raises(duet.ArgumentError):
        duet.compile(BASE, str(tmp_path / "x.duet"), calibration=[42])
    assert not os.path.exists(tmp_path / "x.duet")


def test_compile_lora_type(tmp_path):
    # a q4 file keeps its adapters' A and B in q8 unless asked for f16
    sizes = {}
    for lt in ("auto", "f16"):
        out = duet.compile(BASE, str(tmp_path / (lt + ".duet")), adapters=ADAPTERS, quant="q4", lora_type=lt)
        sizes[lt] = os.path.getsize(out)
        with duet.Model(out) as m, m.session(adapter=NAMES[0]) as s:
            assert s.generate("Hello", max_tokens=4, temperature=0) is not None
    assert sizes["auto"] < sizes["f16"]


def test_compile_tensor_types(tmp_path):
    # rules over the recipe: the MLP of the first two layers in q8 makes the
    # q4 file larger; malformed rules and rules naming nothing are refused
    plain = duet.compile(BASE, str(tmp_path / "plain.duet"), quant="q4")
    mixed = duet.compile(BASE, str(tmp_path / "mixed.duet"), quant="q4",
                         tensor_types=[r"layers\.[01]\.mlp\.=q8", "embed=q6k"])
    assert os.path.getsize(mixed) > os.path.getsize(plain)
    with duet.Model(mixed) as m, m.session() as s:
        assert s.generate("Hello", max_tokens=4, temperature=0) is not None
    for rules, want in (([r"mlp=q3"], "expected PATTERN=TYPE"), (["layers.(=q8"], "not a regular expression"),
                        ([r"blk\.0\.ffn_up=q8"], "names no tensor"), ("mlp=q8", "list")):
        with pytest.raises(duet.ArgumentError, match=want):
            duet.compile(BASE, str(tmp_path / "x.duet"), quant="q4", tensor_types=rules)
    assert not os.path.exists(tmp_path / "x.duet")


@pytest.mark.parametrize("adapter", [None] + NAMES)
def test_greedy_equals_cli(compiled, model, adapter):
    # text the demo model knows (a man page; a chat turn for the tools adapter):
    # confident next tokens (on text it knows little of, near-ties can break
    # apart between two summation orders); stopping at the end of turn as both
    # sides do by default
    prompt = "NAME\n       ls - list directory contents\n\nSYNOPSIS\n"
    if adapter == "tools":  # its own domain: a chat turn that asks for a tool
        prompt = "<|im_start|>user\nWhat is the load average?<|im_end|>\n<|im_start|>assistant\n"
    with model.session(adapter=adapter) as s:
        text = s.generate(prompt, max_tokens=16, temperature=0)
    assert text == cli_greedy(compiled, prompt, adapter, eos=True)


def test_stream_joins_to_the_same_text(model):
    with model.session(adapter=NAMES[0]) as s:
        whole = s.generate("Once upon a time", max_tokens=20, ignore_eos=True)
        s.reset()
        pieces = list(s.generate("Once upon a time", max_tokens=20, ignore_eos=True, stream=True))
        st = s.stats
    assert "".join(pieces) == whole and len(pieces) > 1
    assert st.generated_tokens == 20 and st.ttft_s > 0 and st.tokens_per_s > 0


def test_tokenize_round_trip(model):
    for text in ["Hello, world!", "héllo wörld ✓ 日本語", "  spaces\tand\nnewlines  ", ""]:
        ids = model.tokenize(text)
        assert all(isinstance(i, int) for i in ids)
        assert model.detokenize(ids) == text


def test_render_and_chat(model):
    msgs = [{"role": "user", "content": "hi"}]
    p = model.render(msgs)
    assert "hi" in p and p.endswith("assistant\n")
    assert not model.render(msgs, add_generation_prompt=False).endswith("assistant\n")

    def get_time() -> str:
        """The current time."""
        return "12:00"
    assert "get_time" in model.render(msgs, tools=[get_time])
    with model.session(adapter=NAMES[1], system="You are terse.") as s:
        a = s.generate(msgs, max_tokens=8, seed=3, temperature=0.8)
        assert isinstance(a, str)
        s.set_adapter(NAMES[0])
        assert s.adapter == NAMES[0]
        b = s.chat("and again?", max_tokens=8)
        assert isinstance(b, str) and s.n_tokens > 0


def test_seed_repeats_and_random_seed_varies(model):
    with model.session() as s:
        runs = []
        for seed in (5, 5, None, None):
            s.reset()
            runs.append(s.generate("abc", max_tokens=12, temperature=1.5, seed=seed, ignore_eos=True))
    assert runs[0] == runs[1]
    assert runs[2] != runs[3] or runs[2] != runs[0]


def test_errors(tmp_path, model):
    with pytest.raises(duet.IOError) as ei:
        duet.Model(str(tmp_path / "nope.duet"))
    assert isinstance(ei.value, OSError) and "nope.duet" in str(ei.value)
    bad = tmp_path / "corrupt.duet"
    bad.write_bytes(b"DUET" + os.urandom(4096))
    with pytest.raises(duet.FormatError):
        duet.Model(str(bad))
    with pytest.raises(duet.ArgumentError) as ei:
        with model.session() as s:
            s.generate("x", top_p=0)
    assert isinstance(ei.value, ValueError) and "top_p" in str(ei.value)
    with pytest.raises(duet.NotFoundError):
        model.session(adapter="no-such-adapter")
    with pytest.raises(duet.ArgumentError):
        model.session(temprature=0.5)
    assert issubclass(duet.FormatError, duet.Error)


def test_save_load(tmp_path, model):
    with model.session(adapter=NAMES[0]) as s:
        s.generate([{"role": "user", "content": "remember this"}], max_tokens=6)
        n = s.n_tokens
        s.save(str(tmp_path / "s.sess"))
        with model.session(adapter=NAMES[0]) as t:
            t.load(str(tmp_path / "s.sess"))
            assert t.n_tokens == n
            with model.session(adapter=NAMES[1]) as u:
                with pytest.raises(duet.MismatchError):
                    u.load(str(tmp_path / "s.sess"))


def test_two_threads_two_adapters_match_alone(model):
    prompt = "In the beginning"

    def one(adapter):
        with model.session(adapter=adapter) as s:
            return s.generate(prompt, max_tokens=24, ignore_eos=True)

    alone = {a: one(a) for a in NAMES}
    got = {}
    ts = [threading.Thread(target=lambda a=a: got.__setitem__(a, one(a))) for a in NAMES]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert got == alone and alone[NAMES[0]] != alone[NAMES[1]]


def test_abort_from_another_thread(model):
    with model.session() as s:
        t = threading.Timer(0.05, s.abort)
        t.start()
        text = s.generate("x", max_tokens=0, ignore_eos=True)
        t.join()
        assert s.finish_reason in ("abort", "context") and isinstance(text, str)


def test_stream_break_aborts(model):
    with model.session() as s:
        it = s.generate("count", max_tokens=200, ignore_eos=True, stream=True)
        first = next(it)
        it.close()
        assert isinstance(first, str)
        assert s.generate("again", max_tokens=3, ignore_eos=True) is not None


@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="under ASan freed memory is held in its quarantine (LeakSanitizer checks session churn in the C tests)")
def test_thousand_sessions_no_growth(model):
    def churn(n):
        for _ in range(n):
            s = model.session(ctx=64)
            s.close()
    churn(100)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/statm") as f:
        rss0 = int(f.read().split()[1])
    churn(1000)
    with open("/proc/self/statm") as f:
        rss1 = int(f.read().split()[1])
    assert (rss1 - rss0) * resource.getpagesize() < 8 << 20, "RSS grew by %d pages" % (rss1 - rss0)
    assert before > 0


def test_llm_shortcut(compiled):
    with duet.LLM(compiled, lora_name=NAMES[0], max_tokens=8) as llm:
        assert llm.adapter == NAMES[0]
        assert isinstance(llm.generate("hello", ignore_eos=True), str)
        assert llm.stats.generated_tokens == 8
    with pytest.raises(duet.NotFoundError):
        duet.LLM(compiled, lora_name="missing")


def test_ctrl_c_aborts_generate(compiled):
    import signal
    import sys
    import time
    # the handler set explicitly: a child of a background job starts with
    # SIGINT ignored (POSIX shells do that), and Python keeps it ignored
    code = ("import duet, signal, sys\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "m = duet.Model(sys.argv[1]); s = m.session(ctx=4096)\n"
            "try:\n"
            "    for i, p in enumerate(s.generate('x', ignore_eos=True, stream=True)):\n"
            "        if i == 2: print('started', flush=True)\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted', s.stats.generated_tokens < 4000, flush=True)\n"
            "s.close(); m.close()\n")
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(duet.__file__), ".."))
    p = subprocess.Popen([sys.executable, "-c", code, compiled], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    try:
        assert p.stdout.readline().strip() == b"started"
        time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert out.strip() == b"interrupted True" and p.returncode == 0, (p.returncode, out, err[-2000:])


def test_pip_install_without_network(tmp_path):
    import sys
    import venv  # noqa: F401
    root = os.path.abspath(os.path.join(os.path.dirname(duet.__file__), "..", ".."))
    env_dir = tmp_path / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("python3 -m venv unavailable (apt-get install python3-venv)")
    pip = [str(env_dir / "bin" / "python"), "-m", "pip"]
    if subprocess.run(pip + ["--version"], capture_output=True).returncode != 0:
        pytest.skip("pip unavailable in a venv (apt-get install python3-pip)")
    work = tmp_path / "src"
    import shutil
    shutil.copytree(os.path.join(root, "python"), work, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    shutil.copy(os.environ["DUET_LIB"], work / "duet" / "libduet.so")
    r = subprocess.run(pip + ["install", "-q", "--no-index", "--no-build-isolation", str(work)],
                       capture_output=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr.decode()
    r = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import duet; print(duet.__file__)"],
                       capture_output=True, cwd=str(tmp_path),
                       env={k: v for k, v in os.environ.items() if k in ("PATH", "LD_PRELOAD", "ASAN_OPTIONS")})
    assert r.returncode == 0 and b"site-packages" in r.stdout, r.stderr.decode()
