"""Shared fixtures: the checkout's paths and a small compiled model.
The tests run from anywhere: paths are found from this file's place."""
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))

BUILD = os.environ.get("BUILD", "build")
DUET = os.path.join(ROOT, BUILD, "duet")
if "DUET_LIB" not in os.environ and os.path.exists(os.path.join(ROOT, BUILD, "libduet.so")):
    os.environ["DUET_LIB"] = os.path.join(ROOT, BUILD, "libduet.so")

import duet  # noqa: E402

DEMO = os.path.join(ROOT, "demo")
if os.path.isdir(os.path.join(DEMO, "base")) and os.path.isdir(os.path.join(DEMO, "tools")):
    BASE = os.path.join(DEMO, "base")
    ADAPTERS = {"tools": os.path.join(DEMO, "tools"), "shell": os.path.join(DEMO, "shell")}
else:
    BASE = os.path.join(ROOT, "tests/fixtures/models/tiny-qwen2")
    ADAPTERS = {"alpha": os.path.join(ROOT, "tests/fixtures/models/tiny-qwen2-lora-alpha"),
                "beta": os.path.join(ROOT, "tests/fixtures/models/tiny-qwen2-lora-beta")}
NAMES = sorted(ADAPTERS)


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """A q8 .duet of the base with both adapters, compiled once for the run
    (four calibration prompts: the fourth is held out to judge the choices)."""
    out = str(tmp_path_factory.mktemp("duet") / "model.duet")
    duet.compile(BASE, out, adapters=ADAPTERS, quant="q8",
                 calibration=["The quick brown fox jumps over the lazy dog.",
                              [{"role": "user", "content": "What is the CPU temperature?"},
                               {"role": "assistant", "content": "Let me check."}],
                              "List the files in the current directory, largest first.",
                              "A held-out prompt: calibration judges its choices on every fourth prompt."])
    return out


@pytest.fixture(scope="session")
def model(compiled):
    m = duet.Model(compiled)
    yield m
    m.close()
