"""python_stream.py - decode speed of Python streaming (duet.Session.generate
with stream=True, one piece per token through a ctypes callback) against
`duet bench` on the same .duet, run alternately so both see the same machine.

    PYTHONPATH=python python3 bench/python_stream.py MODEL.duet [--gen 128] [--reps 5] [--ram]

Prints each round and the medians; the overhead is (bench / python) - 1."""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import duet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ram", action="store_true", help="load the .duet into memory in both")
    ap.add_argument("--duet", default=os.path.join(os.path.dirname(__file__), "..", "build", "duet"))
    a = ap.parse_args()
    cli, py = [], []
    with duet.Model(a.model, ram=a.ram) as m:
        s = m.session(ctx=512)
        for rep in range(a.reps + 1):
            cmd = [a.duet, "bench", a.model, "--prompt-tokens", "16", "--gen-tokens", str(a.gen), "--reps", "1",
                   "--json"] + (["--ram"] if a.ram else [])
            r = json.loads(subprocess.run(cmd, capture_output=True, check=True, text=True).stdout)
            s.reset()
            n = 0
            for _ in s.generate("The quick brown fox jumps over the lazy dog again", max_tokens=a.gen,
                                ignore_eos=True, stream=True):
                n += 1
            st = s.stats
            if rep == 0:
                continue  # warm-up: faults the weights in
            cli.append(r["decode_tok_s"])
            py.append(st.tokens_per_s)
            print("round %d: duet bench %.2f tok/s, python stream %.2f tok/s (%d pieces)"
                  % (rep, cli[-1], py[-1], n), flush=True)
        s.close()
    mc, mp = statistics.median(cli), statistics.median(py)
    print("median: duet bench %.2f tok/s, python stream %.2f tok/s, python/bench = %.3f"
          % (mc, mp, mp / mc))


if __name__ == "__main__":
    main()
