"""The alternated measurement behind README "On a GPU": compiled plain loop vs compiled
Lightning at bench.py's GPU shape, two rounds, logging every 10 and every 50 steps.

Run from the repository root on a machine with CUDA; writes $OUT/exp.json.
(bench.py --gpu now alternates its arms the same way.)"""

import importlib.util
import json
import os
import sys

sys.path.insert(0, os.getcwd())
spec = importlib.util.spec_from_file_location("bench", "scripts/bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from src.bench.timed_loops import lightning_seconds_per_step, plain_seconds_per_step  # noqa: E402

out = {}
with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
    for rnd in (1, 2):
        for every in (10, 50):
            shape = bench.GPU_SHAPE + [f"trainer.log_every_n_steps={every}"]
            p = plain_seconds_per_step(shape, 100, 10, compile_model=True, device="cuda")[0]
            lt = lightning_seconds_per_step(shape, 100, 10, None, compile_model=True)
            out[f"r{rnd} every {every}"] = {
                "plain ms": p * 1e3,
                "lightning ms": lt * 1e3,
                "ratio": p / lt,
            }
            print(rnd, every, f"plain {p * 1e3:.2f} ms  lightning {lt * 1e3:.2f} ms", flush=True)
with open(os.path.join(os.environ["OUT"], "exp.json"), "w") as f:
    json.dump(out, f, indent=1)
