"""model.py - duet.Model (a .duet file or checkpoint folder), duet.Session
(one conversation on it) and duet.LLM (a model with one session), over
libduet.so. Every computing call runs with the GIL released, so sessions in
several Python threads are batched by duet's scheduler like C sessions."""
import collections
import ctypes
import json
import os
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from . import _lib
from ._lib import lib, enc, take_string
from .errors import error_for, ArgumentError, StateError

Messages = List[Dict[str, Any]]
Prompt = Union[str, Messages]

_SAMPLING = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "frequency_penalty", "presence_penalty",
             "seed", "max_tokens", "stop", "ignore_eos")


def _check(rc, msg_fn):
    """Raises the duet.Error subclass for a negative status; returns rc."""
    if rc < 0:
        raise error_for(rc, msg_fn())
    return rc


class Stats:
    """Timing of a session's last generate: prompt and generated tokens,
    seconds to the first token, decode tokens per second."""

    __slots__ = ("prompt_tokens", "generated_tokens", "ttft_s", "gen_s")

    def __init__(self, st):
        self.prompt_tokens = st.n_prompt
        self.generated_tokens = st.n_gen
        self.ttft_s = st.ttft_s
        self.gen_s = st.gen_s

    @property
    def tokens_per_s(self) -> float:
        """Decode speed: tokens after the first over the time they took."""
        return (self.generated_tokens - 1) / self.gen_s if self.gen_s > 0 and self.generated_tokens > 1 else 0.0

    def __repr__(self):
        return ("Stats(prompt_tokens=%d, generated_tokens=%d, ttft_s=%.4f, tokens_per_s=%.1f)"
                % (self.prompt_tokens, self.generated_tokens, self.ttft_s, self.tokens_per_s))


class Model:
    """A model opened for inference: a compiled .duet file, or a Hugging Face
    checkpoint folder (with PEFT adapter folders given as adapters=).

    Options: adapters={"name": peft_dir} (folders only), threads=0 (one per
    physical core), kv_budget=0 (bytes of KV cache for all sessions, 0 =
    unlimited), prefill_chunk=0, tokenizer_dir=None, isa=None, ram=None
    (True: copy a .duet into memory; False: map it; None: the library's default).
    Use as a context manager or call close()."""

    def __init__(self, path: str, adapters: Optional[Dict[str, str]] = None, threads: int = 0, kv_budget: int = 0,
                 prefill_chunk: int = 0, tokenizer_dir: Optional[str] = None, isa: Optional[str] = None,
                 ram: Optional[bool] = None):
        if not isinstance(path, (str, os.PathLike)):
            raise ArgumentError("path: expected a file or folder path, got %r" % (path,))
        path = os.fspath(path)
        self._h = None
        o = _lib.ModelOptions()
        lib.duet_model_options_default(ctypes.byref(o))
        o.n_threads = int(threads)
        o.kv_budget_bytes = int(kv_budget)
        o.prefill_chunk = int(prefill_chunk)
        o.tokenizer_dir = enc(tokenizer_dir)
        o.isa = enc(isa)
        if ram is not None:
            o.load_to_ram = 1 if ram else 0
        loras = ["%s=%s" % (k, os.fspath(v)) for k, v in (adapters or {}).items()]
        arr = (ctypes.c_char_p * (len(loras) + 1))(*[enc(x) for x in loras], None)
        o.loras = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p)) if loras else None
        h = ctypes.c_void_p()
        err = ctypes.create_string_buffer(1024)
        rc = lib.duet_model_open(ctypes.byref(h), enc(path), ctypes.byref(o), err, len(err))
        if rc < 0:
            raise error_for(rc, err.value.decode("utf-8", "replace"))
        self._h = h
        self._sessions = set()
        self._lock = threading.Lock()
        self.path = path

    # -- lifetime -------------------------------------------------------
    def close(self) -> None:
        """Closes every session of this model, then the model. Idempotent."""
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.close()
        if self._h:
            _check(lib.duet_model_close(self._h), self._errmsg)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _handle(self):
        if not self._h:
            raise StateError("the model is closed")
        return self._h

    def _errmsg(self):
        return (lib.duet_model_errmsg(self._h) or b"").decode("utf-8", "replace") if self._h else "model closed"

    # -- facts ----------------------------------------------------------
    @property
    def adapters(self) -> List[str]:
        """Names of the adapters this model holds."""
        h = self._handle()
        return [lib.duet_model_adapter_name(h, i).decode() for i in range(lib.duet_model_n_adapters(h))]

    @property
    def vocab_size(self) -> int:
        return lib.duet_model_vocab(self._handle())

    @property
    def max_context(self) -> int:
        """Positions the model was trained for (max_position_embeddings)."""
        return lib.duet_model_max_context(self._handle())

    # -- text -----------------------------------------------------------
    def tokenize(self, text: str) -> List[int]:
        """Token ids of text (no special tokens added; special tokens written
        in the text are matched)."""
        b = text.encode("utf-8")
        ids = ctypes.POINTER(ctypes.c_int)()
        n = ctypes.c_int()
        _check(lib.duet_tokenize(self._handle(), b, len(b), ctypes.byref(ids), ctypes.byref(n)), self._errmsg)
        try:
            return ids[:n.value]
        finally:
            _lib.libc.free(ids)

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of token ids."""
        arr = (ctypes.c_int * len(ids))(*ids)
        out = ctypes.c_void_p()
        _check(lib.duet_detokenize(self._handle(), arr, len(ids), ctypes.byref(out)), self._errmsg)
        return take_string(out.value)

    def render(self, messages: Messages, tools: Optional[List[Any]] = None,
               add_generation_prompt: bool = True) -> str:
        """The prompt the model's chat template makes of messages (and tools:
        OpenAI-form dicts or Python functions), as transformers'
        apply_chat_template(tokenize=False) does."""
        from .tools import tool_specs
        out = ctypes.c_void_p()
        tj = json.dumps([t for t, _ in tool_specs(tools)]) if tools else None
        _check(lib.duet_apply_template_tools(self._handle(), enc(json.dumps(messages)), enc(tj),
                                             1 if add_generation_prompt else 0, ctypes.byref(out)), self._errmsg)
        return take_string(out.value)

    # -- sessions -------------------------------------------------------
    def session(self, adapter: Optional[str] = None, system: Optional[str] = None, ctx: Optional[int] = None,
                **sampling) -> "Session":
        """A new conversation on this model, bound to `adapter` (None: the
        base), with an optional system message and context size (None: the
        smaller of 4096 and the model's maximum). Sampling keywords (as
        Session.generate takes) become the session's defaults."""
        return Session(self, adapter=adapter, system=system, ctx=ctx, **sampling)

    def __repr__(self):
        return "duet.Model(%r, adapters=%r)" % (self.path, self.adapters if self._h else "closed")


class Session:
    """One conversation: its KV cache, history and adapter. Belongs to one
    thread at a time; abort() may be called from any thread."""

    def __init__(self, model: Model, adapter: Optional[str] = None, system: Optional[str] = None,
                 ctx: Optional[int] = None, **sampling):
        unknown = set(sampling) - set(_SAMPLING)
        if unknown:
            raise ArgumentError("unknown option %s; expected one of %s" % (sorted(unknown)[0], ", ".join(_SAMPLING)))
        self.model = model
        self._h = None
        self._defaults = dict(sampling)
        o = _lib.SessionOptions()
        lib.duet_session_options_default(ctypes.byref(o))
        o.adapter = enc(adapter)
        o.n_ctx = int(ctx or 0)
        h = ctypes.c_void_p()
        _check(lib.duet_session_create(model._handle(), ctypes.byref(o), ctypes.byref(h)), model._errmsg)
        self._h = h
        self._adapter = adapter
        self._system = system
        self._mode = None  # "chat" or "raw" once something was appended
        self._tools = None  # (json list, {name: callable}) set by an Agent
        with model._lock:
            model._sessions.add(self)
        if system is not None:
            self._append_message("system", system)

    # -- lifetime -------------------------------------------------------
    def close(self) -> None:
        """Frees the session and its KV cache. Idempotent."""
        if self._h:
            lib.duet_session_close(self._h)
            self._h = None
            with self.model._lock:
                self.model._sessions.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self):
        if not self._h:
            raise StateError("the session is closed")
        return self._h

    def _errmsg(self):
        return (lib.duet_session_errmsg(self._h) or b"").decode("utf-8", "replace") if self._h else "session closed"

    # -- state ----------------------------------------------------------
    @property
    def adapter(self) -> Optional[str]:
        """The adapter this session runs with (None: the base model)."""
        return self._adapter

    def set_adapter(self, name: Optional[str]) -> None:
        """Switches adapter (None: the base). The conversation is kept; its
        tokens are prefilled again with the new adapter at the next generate."""
        _check(lib.duet_session_set_adapter(self._handle(), enc(name)), self._errmsg)
        self._adapter = name

    def reset(self) -> None:
        """Forgets the conversation (the system message given at creation is kept)."""
        lib.duet_session_clear(self._handle())
        self._mode = None
        if self._system is not None:
            self._append_message("system", self._system)

    def save(self, path: str) -> None:
        """Writes the conversation with its KV cache to path."""
        _check(lib.duet_session_save(self._handle(), enc(os.fspath(path))), self._errmsg)

    def load(self, path: str) -> None:
        """Replaces the conversation by the one saved at path (same model and adapter)."""
        try:
            _check(lib.duet_session_load(self._handle(), enc(os.fspath(path))), self._errmsg)
        finally:
            self._mode = "chat" if lib.duet_session_n_tokens(self._handle()) else None

    @property
    def n_tokens(self) -> int:
        """Tokens in the context (cached or pending)."""
        return lib.duet_session_n_tokens(self._handle())

    @property
    def n_ctx(self) -> int:
        """The context's capacity in tokens."""
        return lib.duet_session_n_ctx(self._handle())

    @property
    def stats(self) -> Stats:
        """Timing of the last generate (tokens, TTFT, tok/s)."""
        st = _lib.Stats()
        lib.duet_session_stats(self._handle(), ctypes.byref(st))
        return Stats(st)

    def abort(self) -> None:
        """Stops the generate in progress (or the next one) within one step.
        Safe from any thread."""
        if self._h:
            lib.duet_session_abort(self._h)

    # -- appending --------------------------------------------------------
    def _append_message(self, role, content):
        if self._mode == "raw":
            raise StateError("the session holds raw text; call reset() before chat messages")
        _check(lib.duet_session_append_message(self._handle(), enc(role), enc(content)), self._errmsg)
        self._mode = "chat"

    def append(self, role: str, content: str) -> None:
        """Adds a chat message (system, user, assistant, tool) without generating."""
        self._append_message(role, content)

    def _append_prompt(self, prompt):
        if isinstance(prompt, str):
            if self._mode == "chat":
                self._append_message("user", prompt)
            else:
                b = prompt.encode("utf-8")
                _check(lib.duet_session_append_text(self._handle(), b, len(b)), self._errmsg)
                self._mode = "raw"
        elif isinstance(prompt, list):
            for i, msg in enumerate(prompt):
                if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) \
                        or not isinstance(msg.get("content"), str):
                    raise ArgumentError("messages[%d]: expected {\"role\": str, \"content\": str}" % i)
                self._append_message(msg["role"], msg["content"])
        elif prompt is not None:
            raise ArgumentError("prompt: expected a str or a list of chat messages, got %s" % type(prompt).__name__)

    def chat(self, message: str, **kw):
        """Adds a user message and generates the reply (chat mode), whatever
        the session held before was: messages or nothing."""
        if self._mode == "raw":
            raise StateError("the session holds raw text; call reset() before chat messages")
        self._append_message("user", message)
        return self.generate(None, **kw)

    # -- generating -------------------------------------------------------
    def _options(self, kw):
        unknown = set(kw) - set(_SAMPLING)
        if unknown:
            raise ArgumentError("generate: unknown option %s; expected one of %s"
                                % (sorted(unknown)[0], ", ".join(_SAMPLING)))
        v = dict(self._defaults)
        v.update({k: x for k, x in kw.items() if x is not None})
        o = _lib.SessionOptions()
        lib.duet_session_options_default(ctypes.byref(o))
        o.temperature = float(v.get("temperature", 0.0))
        o.top_k = int(v.get("top_k", 0))
        o.top_p = float(v.get("top_p", 1.0))
        o.min_p = float(v.get("min_p", 0.0))
        o.repetition_penalty = float(v.get("repeat_penalty", 1.0))
        o.frequency_penalty = float(v.get("frequency_penalty", 0.0))
        o.presence_penalty = float(v.get("presence_penalty", 0.0))
        seed = v.get("seed")
        o.seed = int(seed) & 0xFFFFFFFFFFFFFFFF if seed is not None else int.from_bytes(os.urandom(8), "little")
        o.max_tokens = int(v.get("max_tokens", 0))
        o.ignore_eos = 1 if v.get("ignore_eos") else 0
        stop = v.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        if len(stop) > _lib.MAX_STOPS:
            raise ArgumentError("stop: at most %d strings" % _lib.MAX_STOPS)
        for i, s in enumerate(stop):
            o.stop[i] = enc(s)
        _check(lib.duet_session_set_options(self._handle(), ctypes.byref(o)), self._errmsg)

    def generate(self, prompt: Optional[Prompt] = None, *, stream: bool = False, max_tokens: Optional[int] = None,
                 temperature: Optional[float] = None, top_k: Optional[int] = None, top_p: Optional[float] = None,
                 min_p: Optional[float] = None, repeat_penalty: Optional[float] = None, seed: Optional[int] = None,
                 stop: Optional[Sequence[str]] = None, **more) -> Union[str, Iterator[str]]:
        """Appends prompt (a str: a user message in a chat session, raw text in
        a fresh one...; see below) and generates.

        prompt: a list of chat messages [{"role", "content"}] appends them all
        (chat mode); a str on a fresh or raw session is raw text (no template),
        on a chat session a user message; None generates from what is there.
        temperature=0 (the default) is greedy; seed=None draws a random seed.
        Returns the text, or with stream=True an iterator of text pieces (the
        generation runs while you iterate; breaking out aborts it).
        Ctrl-C aborts the generation and raises KeyboardInterrupt."""
        kw = dict(max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                  repeat_penalty=repeat_penalty, seed=seed, stop=list(stop) if stop else None, **more)
        self._options(kw)
        self._append_prompt(prompt)
        if stream:
            return self._stream()
        return "".join(self._stream())

    def _stream(self) -> Iterator[str]:
        h = self._handle()
        # a deque polled with sleeps, not a queue.Queue: Ctrl-C landing
        # inside Queue.get's condition wait can surface as "RuntimeError:
        # release unlocked lock" instead of KeyboardInterrupt (CPython
        # 3.11); deque appends and pops take no Python-level lock
        q = collections.deque()
        pending = []

        def on_piece(user, piece, n, token):
            if n:
                pending.append(ctypes.string_at(piece, n))
                q.append(b"".join(pending).decode("utf-8", "replace"))
                pending.clear()
            return 0

        cb = _lib.TOKEN_CB(on_piece)
        result = {}

        def worker():
            try:
                result["rc"] = lib.duet_generate(h, cb, None)
            finally:
                q.append(None)

        t = threading.Thread(target=worker, name="duet-generate", daemon=True)
        t.start()
        finished = False
        try:
            while True:
                if not q:
                    time.sleep(0.002)
                    continue
                item = q.popleft()
                if item is None:
                    finished = True
                    break
                yield item
        finally:
            if not finished:
                lib.duet_session_abort(h)   # KeyboardInterrupt, or the consumer stopped iterating
            while t.is_alive():
                t.join(0.05)
        rc = result.get("rc", 0)
        if rc < 0:
            raise error_for(rc, self._errmsg())
        self.finish_reason = _FINISH.get(rc, "stop")

    def __repr__(self):
        return "duet.Session(adapter=%r, tokens=%s)" % (self._adapter, self.n_tokens if self._h else "closed")


_FINISH = {0: "stop", 1: "stop", 2: "length", 3: "callback", 4: "abort", 5: "context"}


class LLM(Session):
    """A model with one session: duet.LLM("model.duet", lora_name="tools").

    lora_name picks the adapter (None: the base); system, ctx and the
    sampling defaults go to the session, every other keyword to duet.Model.
    close() closes the model too."""

    def __init__(self, path: str, lora_name: Optional[str] = None, system: Optional[str] = None,
                 ctx: Optional[int] = None, **options):
        sampling = {k: options.pop(k) for k in list(options) if k in _SAMPLING}
        m = Model(path, **options)
        try:
            super().__init__(m, adapter=lora_name, system=system, ctx=ctx, **sampling)
        except BaseException:
            m.close()
            raise

    def close(self) -> None:
        super().close()
        self.model.close()
