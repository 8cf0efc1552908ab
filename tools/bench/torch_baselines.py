#!/usr/bin/env python3
"""PyTorch baselines for the engine's resident training speed (issue 16): GPT-2-family training steps in
PyTorch eager and under torch.compile, with the shapes of the repository's models/*.json.

Each run builds transformers' GPT2LMHeadModel from a GPT2Config (no download; random weights), on one GPU:
sdpa attention, fp32 weights with bf16 autocast, fused AdamW, the model's dropout (as the engine trains),
random token batches of --micro-batch sequences of --seq-len tokens, labels = inputs (next-token loss).
After --warmup steps (for compile: the compilation and its autotuning), --steps timed steps, each bracketed
by CUDA events and followed by a synchronisation. One JSON line per (model, mode) goes to stdout and, with
--out, is appended to that file:

  {"impl": "torch-eager" | "torch-compile", "model", "micro_batch", "seq_len", "steps", "warmup",
   "median_ms", "p10_ms", "p90_ms", "min_ms", "max_ms",
   "tokens_per_s"  (tokens of the timed steps / their total time: the engine's summary.json definition),
   "tokens_per_s_median" (tokens per step / median step), "warmup_s", "first_loss", "last_loss",
   "peak_allocated_bytes", "peak_reserved_bytes", "gpu", "torch", "transformers", "utc", "error"}

A run that fails (out of memory, a compile error) writes its line with "error" set and no timings, and the
script exits 1 after the other runs.

  python3 tools/bench/torch_baselines.py --model gpt2-xl --micro-batch 8 --mode both --out results.jsonl
  python3 tools/bench/torch_baselines.py --model gpt2 --dry-run      # the plan, without importing torch
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# models/*.json activation names -> transformers' activation_function for GPT-2.
ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a name under models/ (gpt2, gpt2-medium, gpt2-large, gpt2-xl) or a path to such a JSON")
    p.add_argument("--micro-batch", type=int, default=8, help="sequences per step (default 8)")
    p.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence (default 1024)")
    p.add_argument("--mode", choices=["eager", "compile", "both"], default="both")
    p.add_argument("--compile-mode", default="default", help="torch.compile mode: default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5 eager, 10 compile)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=None, help="append the JSON lines to this file as well")
    p.add_argument("--dry-run", action="store_true", help="print the plan of runs and the model config; do not import torch")
    args = p.parse_args(argv)
    for name in ("micro_batch", "seq_len", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    if not args.device.startswith("cuda"):
        p.error(f"--device {args.device}: this baseline times CUDA steps with CUDA events; give cuda or cuda:N")
    if args.warmup is not None and args.warmup < 1:
        p.error(f"--warmup {args.warmup}: must be at least 1 (the first step allocates and, for compile, compiles)")
    return args


def load_spec(model: str) -> dict:
    """The model's shape from models/<name>.json (or a path); refuses anything but a GPT-2-style decoder."""
    path = model if model.endswith(".json") or os.sep in model else os.path.join(REPO, "models", model + ".json")
    if not os.path.isfile(path):
        sys.exit(f"error: --model {model}: no such file {path} (give a name under models/, e.g. gpt2-xl, or a path to a models/*.json)")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    problems = []
    if spec.get("ffn_kind") != "gelu_mlp" or spec.get("norm") != "layernorm" or spec.get("positions") != "learned":
        problems.append("not a GPT-2-style model (needs ffn_kind gelu_mlp, norm layernorm, positions learned)")
    if spec.get("num_kv_heads", spec["num_heads"]) != spec["num_heads"]:
        problems.append("grouped-query attention is not GPT-2")
    if spec.get("activation", "gelu_tanh") not in ACTIVATIONS:
        problems.append(f"activation {spec.get('activation')!r} has no GPT-2 equivalent")
    if problems:
        sys.exit(f"error: {path}: " + "; ".join(problems) + ". This baseline builds transformers' GPT2LMHeadModel only.")
    return spec


def gpt2_config_kwargs(spec: dict, seq_len: int) -> dict:
    """GPT2Config arguments with the engine's shapes; n_positions covers --seq-len."""
    if seq_len > spec.get("max_seq_len", seq_len):
        sys.exit(f"error: --seq-len {seq_len} exceeds {spec['name']}'s max_seq_len {spec['max_seq_len']}")
    dropout = spec.get("dropout", 0.0)
    return dict(
        vocab_size=spec["vocab_size"], n_positions=spec.get("max_seq_len", seq_len), n_embd=spec["hidden_size"],
        n_layer=spec["num_layers"], n_head=spec["num_heads"], n_inner=spec["ffn_size"],
        activation_function=ACTIVATIONS[spec.get("activation", "gelu_tanh")], layer_norm_epsilon=spec.get("norm_eps", 1e-5),
        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, tie_word_embeddings=spec.get("tied_embeddings", True),
        use_cache=False,
    )


def modes(args: argparse.Namespace) -> list[str]:
    return ["eager", "compile"] if args.mode == "both" else [args.mode]


def warmup_for(args: argparse.Namespace, mode: str) -> int:
    return args.warmup if args.warmup is not None else (10 if mode == "compile" else 5)


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on an ascending list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def run_one(args: argparse.Namespace, spec: dict, mode: str) -> dict:
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    record = {"impl": f"torch-{mode}", "model": spec["name"], "micro_batch": args.micro_batch, "seq_len": args.seq_len,
              "steps": args.steps, "warmup": warmup_for(args, mode), "compile_mode": args.compile_mode if mode == "compile" else None,
              "torch": torch.__version__, "transformers": transformers.__version__,
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
              "utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "error": None}
    model = opt = step_fn = batches = None
    try:
        torch.manual_seed(args.seed)
        config = GPT2Config(**gpt2_config_kwargs(spec, args.seq_len))
        try:
            model = GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")
        except (TypeError, AttributeError):  # a transformers without that keyword: set it on the config
            config._attn_implementation = "sdpa"
            model = GPT2LMHeadModel(config)
        record["attention"] = getattr(model.config, "_attn_implementation", None)  # what transformers actually chose
        model = model.to(args.device)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, fused=True)
        step_fn = model if mode == "eager" else torch.compile(model, mode=None if args.compile_mode == "default" else args.compile_mode)
        gen = torch.Generator(device=args.device).manual_seed(args.seed)
        batches = [torch.randint(0, spec["vocab_size"], (args.micro_batch, args.seq_len), device=args.device, generator=gen) for _ in range(4)]
        losses: list[float] = []

        def step(i: int) -> torch.Tensor:
            tokens = batches[i % len(batches)]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                loss = step_fn(input_ids=tokens, labels=tokens).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        t0 = time.perf_counter()
        for i in range(record["warmup"]):
            losses.append(float(step(i)))
        torch.cuda.synchronize()
        record["warmup_s"] = round(time.perf_counter() - t0, 3)
        torch.cuda.reset_peak_memory_stats()

        times_ms = []
        for i in range(args.steps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            loss = step(record["warmup"] + i)
            end.record()
            end.synchronize()
            times_ms.append(start.elapsed_time(end))
            losses.append(float(loss))
        tokens = args.micro_batch * args.seq_len
        ordered = sorted(times_ms)
        record.update(
            median_ms=round(percentile(ordered, 0.5), 3), p10_ms=round(percentile(ordered, 0.1), 3), p90_ms=round(percentile(ordered, 0.9), 3),
            min_ms=round(ordered[0], 3), max_ms=round(ordered[-1], 3),
            tokens_per_s=round(tokens * args.steps / (sum(times_ms) / 1e3), 1),
            tokens_per_s_median=round(tokens / (percentile(ordered, 0.5) / 1e3), 1),
            first_loss=losses[0], last_loss=losses[-1],
            peak_allocated_bytes=torch.cuda.max_memory_allocated(), peak_reserved_bytes=torch.cuda.max_memory_reserved())
    except Exception as e:  # noqa: BLE001 - any failure (OOM, compile) is recorded in the line, not lost
        record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        # Drop every reference before the next mode runs in this process (compare.sh runs one mode per process anyway).
        model = opt = step_fn = batches = None
        import gc
        gc.collect()
        torch.cuda.empty_cache()
        torch._dynamo.reset()
    return record


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    spec = load_spec(args.model)
    if args.dry_run:
        for mode in modes(args):
            print(json.dumps({"plan": f"torch-{mode}", "model": spec["name"], "micro_batch": args.micro_batch, "seq_len": args.seq_len,
                              "warmup": warmup_for(args, mode), "steps": args.steps,
                              "compile_mode": args.compile_mode if mode == "compile" else None,
                              "gpt2_config": gpt2_config_kwargs(spec, args.seq_len),
                              "precision": "fp32 weights, bf16 autocast", "optimizer": "torch.optim.AdamW(fused=True)", "attention": "sdpa"}))
        return 0
    failed = False
    for mode in modes(args):
        record = run_one(args, spec, mode)
        failed |= record["error"] is not None
        line = json.dumps(record)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(line + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
