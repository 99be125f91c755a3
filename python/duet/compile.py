"""compile.py - duet.compile(): a Hugging Face checkpoint folder and PEFT
adapter folders, quantized with an optional calibration set, into one .duet
file (the C library's duet_compile_file, GIL released)."""
import ctypes
import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import _lib
from ._lib import lib, enc
from .errors import error_for, ArgumentError

CalibItem = Union[str, List[Dict[str, Any]]]
Progress = Union[None, bool, Callable[[str, int, int], None]]


def _bar():
    """A progress callback that draws a bar on stderr."""
    t0 = time.monotonic()

    def draw(stage, done, total):
        w = 30
        f = done * w // total if total else w
        el = time.monotonic() - t0
        sys.stderr.write("\r%-26s [%s%s] %d/%d %5.1fs" % (stage[:26], "#" * f, " " * (w - f), done, total, el))
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return draw


def _write_calibration(items: Sequence[CalibItem], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, it in enumerate(items):
            if isinstance(it, str):
                rec = {"text": it}
            elif isinstance(it, list) and all(isinstance(m, dict) for m in it):
                rec = {"messages": it}
            else:
                raise ArgumentError("calibration[%d]: expected a str or a list of chat messages, got %s"
                                    % (i, type(it).__name__))
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def compile(base_dir: str, out_path: str, adapters: Optional[Dict[str, str]] = None, quant: str = "q4",
            calibration: Union[None, str, Sequence[CalibItem]] = None, progress: Progress = None,
            threads: int = 0, lora_type: str = "auto", tensor_types: Optional[Sequence[str]] = None) -> str:
    """Compiles base_dir (a Hugging Face checkpoint folder) with the PEFT
    folders of adapters={"name": dir} into out_path, with weights of type
    quant (`duet compile --help` lists them; "q4" by default).

    calibration: a list of texts and/or chat conversations (lists of
    {"role", "content"}), or the path of a JSON-lines file; None: none.
    progress: a callable(stage, done, total), True for a bar on stderr, or
    None. lora_type: the adapters' A and B, "auto" (q8 in files of at most
    4.5 bits per weight, as `duet compile --lora-type auto`), "f16" or "q8".
    tensor_types: rules "PATTERN=TYPE" as `duet compile --tensor-type` takes
    them, e.g. ["embed=q6k", "layers[.](0|1)[.]mlp[.]down_proj=q8"]: the
    tensors a PATTERN (a group word or a regular expression over the
    checkpoint's tensor names) names get TYPE, the first rule naming a
    tensor winning. Returns out_path; raises duet.Error (IOError for a missing folder,
    FormatError for a malformed one, ArgumentError for a bad option)."""
    base_dir, out_path = os.fspath(base_dir), os.fspath(out_path)
    o = _lib.CompileOptions()
    lib.duet_compile_options_default(ctypes.byref(o))
    loras = []
    for name, d in (adapters or {}).items():
        if not isinstance(name, str) or not name or "=" in name:
            raise ArgumentError("adapters: names must be non-empty strings without '=', got %r" % (name,))
        loras.append(enc("%s=%s" % (name, os.fspath(d))))
    arr = (ctypes.c_char_p * (len(loras) + 1))(*loras, None)
    o.loras = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p)) if loras else None
    o.quant = enc(quant)
    o.n_threads = int(threads)
    o.lora_type = enc(lora_type)
    if isinstance(tensor_types, str):
        raise ArgumentError("tensor_types: expected a list of \"PATTERN=TYPE\" strings, got a str")
    rules = [enc(r) if isinstance(r, str) else None for r in (tensor_types or [])]
    if None in rules:
        raise ArgumentError("tensor_types: expected a list of \"PATTERN=TYPE\" strings")
    rules_arr = (ctypes.c_char_p * (len(rules) + 1))(*rules, None)
    o.tensor_types = ctypes.cast(rules_arr, ctypes.POINTER(ctypes.c_char_p)) if rules else None
    cb = progress
    if progress is True:
        cb = _bar()
    keep = None
    if cb:
        def bridge(user, stage, done, total):
            try:
                cb(stage.decode("utf-8", "replace"), done, total)
            except Exception:  # a failing progress callback must not break the compile
                pass
        keep = _lib.PROGRESS_CB(bridge)
        o.progress = keep
    tmpdir = None
    try:
        if isinstance(calibration, (str, os.PathLike)):
            o.calib_path = enc(os.fspath(calibration))
        elif calibration is not None:
            tmpdir = tempfile.mkdtemp(prefix="duet-calib-")
            path = os.path.join(tmpdir, "calibration.jsonl")
            _write_calibration(list(calibration), path)
            o.calib_path = enc(path)
        err = ctypes.create_string_buffer(1024)
        rc = lib.duet_compile_file(enc(base_dir), enc(out_path), ctypes.byref(o), err, len(err))
        if rc < 0:
            raise error_for(rc, err.value.decode("utf-8", "replace"))
    finally:
        if tmpdir:
            for f in os.listdir(tmpdir):
                os.unlink(os.path.join(tmpdir, f))
            os.rmdir(tmpdir)
    del keep
    return out_path
