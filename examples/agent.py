"""agent.py - a device assistant in Python: the demo model's `tools` adapter
answers questions about this machine by calling duet's built-in tools, plus
one Python function. Run from the checkout root after `sh setup.sh`:

    PYTHONPATH=python python3 examples/agent.py "What is the CPU temperature?"
"""
import sys

import duet


def disk_free(path: str = "/") -> str:
    """Free space of the filesystem holding path, in GB."""
    import shutil
    return "%.1f GB free" % (shutil.disk_usage(path).free / 1e9)


model_path = "build/demo.duet"
question = " ".join(sys.argv[1:]) or "What is the CPU temperature?"
with duet.LLM(model_path, lora_name="tools", max_tokens=256) as llm:
    agent = duet.Agent(llm, tools=[disk_free], builtin=True, max_steps=4)
    result = agent.run(question, stream=lambda piece: print(piece, end="", flush=True))
    print()
    for step in result.steps:
        print("  [%s %s -> %s]" % (step.tool, step.arguments, step.result), file=sys.stderr)
