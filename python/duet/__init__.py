"""duet - run a fine-tuned small LLM with its LoRA adapters on a CPU, from
Python: compile a Hugging Face checkpoint and PEFT adapters into one .duet
file, open it, chat with an adapter per session, stream, and run an agent
whose tools are plain Python functions.

    import duet
    duet.compile("base/", "model.duet", adapters={"tools": "lora-tools/"}, quant="q4",
                 calibration=["some text", [{"role": "user", "content": "hi"}]])
    llm = duet.LLM("model.duet", lora_name="tools")
    for piece in llm.generate([{"role": "user", "content": "Hello"}], stream=True):
        print(piece, end="")

Everything runs in libduet.so (found beside this package, in the checkout's
build/, through $DUET_LIB, or on the library path); calls that compute
release the GIL. Errors are duet.Error subclasses carrying duet's message.
"""
from .errors import (Error, ArgumentError, IOError, FormatError, NotFoundError, ContextFullError, BudgetError,
                     OutOfMemoryError, UTF8Error, MismatchError, StateError, InternalError)
from .model import Model, Session, LLM, Stats
from .compile import compile
from .tools import function_tool
from .agent import Agent, AgentResult, AgentStep

__version__ = "0.5.0"

__all__ = ["compile", "Model", "Session", "LLM", "Stats", "Agent", "AgentResult", "AgentStep", "function_tool",
           "Error", "ArgumentError", "IOError", "FormatError", "NotFoundError", "ContextFullError", "BudgetError",
           "OutOfMemoryError", "UTF8Error", "MismatchError", "StateError", "InternalError"]
