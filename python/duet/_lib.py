"""_lib.py - finds and loads libduet.so and declares the C signatures of
include/duet.h for ctypes. ctypes releases the GIL around every foreign call,
so the computing calls (open, compile, generate) let other Python threads run.
"""
import ctypes
import ctypes.util
import os

c_int_p = ctypes.POINTER(ctypes.c_int)

# duet_status codes of duet.h
OK = 0
ERR_ARG, ERR_IO, ERR_FORMAT, ERR_NOT_FOUND, ERR_CONTEXT_FULL = -1, -2, -3, -4, -5
ERR_BUDGET, ERR_NOMEM, ERR_UTF8, ERR_MISMATCH, ERR_STATE, ERR_INTERNAL = -6, -7, -8, -9, -10, -11

MAX_STOPS = 8


class ModelOptions(ctypes.Structure):
    _fields_ = [
        ("n_threads", ctypes.c_int),
        ("isa", ctypes.c_char_p),
        ("kv_budget_bytes", ctypes.c_size_t),
        ("prefill_chunk", ctypes.c_int),
        ("tokenizer_dir", ctypes.c_char_p),
        ("loras", ctypes.POINTER(ctypes.c_char_p)),
        ("load_to_ram", ctypes.c_int),
    ]


class SessionOptions(ctypes.Structure):
    _fields_ = [
        ("adapter", ctypes.c_char_p),
        ("n_ctx", ctypes.c_int),
        ("kv_type", ctypes.c_int),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repetition_penalty", ctypes.c_float),
        ("frequency_penalty", ctypes.c_float),
        ("presence_penalty", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("max_tokens", ctypes.c_int),
        ("ignore_eos", ctypes.c_int),
        ("stop", ctypes.c_char_p * MAX_STOPS),
        ("stop_ids", ctypes.c_int * MAX_STOPS),
        ("n_stop_ids", ctypes.c_int),
    ]


class Stats(ctypes.Structure):
    _fields_ = [("n_prompt", ctypes.c_int), ("n_gen", ctypes.c_int), ("ttft_s", ctypes.c_double),
                ("gen_s", ctypes.c_double)]


PROGRESS_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int)
TOKEN_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                            ctypes.c_int)


class CompileOptions(ctypes.Structure):
    _fields_ = [
        ("loras", ctypes.POINTER(ctypes.c_char_p)),
        ("quant", ctypes.c_char_p),
        ("calib_path", ctypes.c_char_p),
        ("n_threads", ctypes.c_int),
        ("progress", PROGRESS_CB),
        ("progress_user", ctypes.c_void_p),
        ("lora_type", ctypes.c_char_p),
        ("tensor_types", ctypes.POINTER(ctypes.c_char_p)),
    ]


def _candidates():
    env = os.environ.get("DUET_LIB")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    # python/duet in a built checkout first: a copy left beside the package by
    # `pip install ./python` must not shadow a newer build
    yield os.path.join(here, "..", "..", "build", "libduet.so")
    yield os.path.join(here, "libduet.so")                       # installed beside the package
    found = ctypes.util.find_library("duet")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as exc:
            tried.append("%s (%s)" % (path, exc))
    raise ImportError("duet: libduet.so not found; build it with `make` in the duet checkout or set DUET_LIB. "
                      "Tried: " + ", ".join(tried))


def _declare(lib):
    P, I, S, V = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, None
    sig = {
        "duet_model_options_default": (V, [ctypes.POINTER(ModelOptions)]),
        "duet_model_open": (I, [ctypes.POINTER(P), S, ctypes.POINTER(ModelOptions), ctypes.c_char_p, ctypes.c_size_t]),
        "duet_model_close": (I, [P]),
        "duet_model_errmsg": (S, [P]),
        "duet_model_n_adapters": (I, [P]),
        "duet_model_adapter_name": (S, [P, I]),
        "duet_model_vocab": (I, [P]),
        "duet_model_max_context": (I, [P]),
        "duet_tokenize": (I, [P, S, ctypes.c_size_t, ctypes.POINTER(c_int_p), c_int_p]),
        "duet_detokenize": (I, [P, c_int_p, I, ctypes.POINTER(ctypes.c_void_p)]),
        "duet_apply_template_tools": (I, [P, S, S, I, ctypes.POINTER(ctypes.c_void_p)]),
        "duet_session_options_default": (V, [ctypes.POINTER(SessionOptions)]),
        "duet_session_create": (I, [P, ctypes.POINTER(SessionOptions), ctypes.POINTER(P)]),
        "duet_session_close": (V, [P]),
        "duet_session_errmsg": (S, [P]),
        "duet_session_set_adapter": (I, [P, S]),
        "duet_session_append_tokens": (I, [P, c_int_p, I]),
        "duet_session_append_text": (I, [P, S, ctypes.c_size_t]),
        "duet_session_append_message": (I, [P, S, S]),
        "duet_generate": (I, [P, TOKEN_CB, P]),
        "duet_session_abort": (V, [P]),
        "duet_session_clear": (V, [P]),
        "duet_session_n_tokens": (I, [P]),
        "duet_session_n_ctx": (I, [P]),
        "duet_session_stats": (V, [P, ctypes.POINTER(Stats)]),
        "duet_session_save": (I, [P, S]),
        "duet_session_load": (I, [P, S]),
        "duet_compile_options_default": (V, [ctypes.POINTER(CompileOptions)]),
        "duet_compile_file": (I, [S, S, ctypes.POINTER(CompileOptions), ctypes.c_char_p, ctypes.c_size_t]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free.restype = None
    return libc


lib = _load()
libc = _declare(lib)


def optional(name, restype, argtypes):
    """The C function `name` with its signature, or None when this libduet.so
    predates it."""
    fn = getattr(lib, name, None)
    if fn is not None:
        fn.restype = restype
        fn.argtypes = argtypes
    return fn


def take_string(ptr):
    """The malloc'd C string at ptr as str (UTF-8), freed."""
    if not ptr:
        return ""
    try:
        return ctypes.string_at(ptr).decode("utf-8", errors="replace")
    finally:
        libc.free(ptr)


def enc(s):
    """A str as NUL-terminated UTF-8 for a char* argument (None stays NULL)."""
    if s is None:
        return None
    b = s.encode("utf-8")
    if b"\0" in b:
        raise ValueError("text contains a NUL character")
    return b
