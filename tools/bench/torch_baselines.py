#!/usr/bin/env python3
"""PyTorch baselines for the engine's resident training speed (issues 13 and 16): GPT-2-family training steps
in PyTorch eager and under torch.compile, with the shapes of the repository's models/*.json.

Each run builds transformers' GPT2LMHeadModel from a GPT2Config (no download; random weights, initialised on
the GPU), on one GPU: sdpa attention, fp32 weights, fused AdamW, the model's dropout (as the engine trains),
random token batches of --micro-batch sequences of --seq-len tokens, labels = inputs (next-token loss).
--precision bf16 (the default) runs forward and loss under bf16 autocast; fp32 runs without autocast (torch's
TF32 switches are left as they are and recorded). --checkpointing on calls model.gradient_checkpointing_enable()
(non-reentrant where transformers accepts the keyword; use_cache is off).
After --warmup steps (for compile: the compilation and its autotuning), --steps timed steps, each bracketed
by CUDA events and followed by a synchronisation.

Sweeps run in ONE process (torch import and CUDA init once): --model, --micro-batch and --precision take
comma-separated lists, --checkpointing takes off | on | both (--grad-checkpointing alone = on), --mode both =
eager and compile. The runs are the cartesian product, smallest model first (then mode, micro-batch ascending, precision,
checkpointing off before on), so a budget cut loses the largest. Between runs the model, optimizer and batches
are dropped, then gc, torch.cuda.empty_cache() and reset_peak_memory_stats(). A run that fails (out of memory,
a compile error) writes its line with "error" set and null timings, and the sweep goes on. --budget-s N: no run
is started once N seconds have passed since the script started, nor when the elapsed time plus the longest
earlier run of the same model would pass N; each such run gets a line with "error": "skipped: budget".
One JSON line per run goes to stdout and, with --out, is appended to that file and flushed at once:

  {"impl": "torch-eager" | "torch-compile", "model", "micro_batch", "seq_len",
   "precision": "bf16" | "fp32", "precision_detail" ("fp32 weights, bf16 autocast" | "fp32 weights, no autocast"),
   "grad_checkpointing": true | false, "checkpoint_use_reentrant" (false | null: transformers' default),
   "allow_tf32_matmul", "allow_tf32_cudnn" (torch.backends.cuda.matmul / cudnn .allow_tf32 during the run),
   "steps", "warmup", "compile_mode", "attention",
   "median_ms", "p10_ms", "p90_ms", "min_ms", "max_ms",
   "tokens_per_s"  (tokens of the timed steps / their total time: the engine's summary.json definition),
   "tokens_per_s_median" (tokens per step / median step), "warmup_s", "run_s" (wall time of the whole run,
   build included), "first_loss", "last_loss",
   "peak_allocated_bytes", "peak_reserved_bytes" (of the timed steps), "gpu", "torch", "transformers", "utc", "error"}

The script exits 1 if any run failed or was skipped, 0 otherwise.

  python3 tools/bench/torch_baselines.py --model gpt2-xl --micro-batch 8 --mode both --out results.jsonl
  python3 tools/bench/torch_baselines.py --model gpt2,gpt2-medium,gpt2-large,gpt2-xl --micro-batch 1,2,4,8 \
      --precision bf16,fp32 --checkpointing both --mode eager --warmup 3 --steps 8 --budget-s 480 --out eager.jsonl
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


PRECISION_DETAIL = {"bf16": "fp32 weights, bf16 autocast", "fp32": "fp32 weights, no autocast"}
CHECKPOINTING = {"off": [False], "on": [True], "both": [False, True]}


def split_list(flag: str, text: str, convert=str) -> list:
    """A comma-separated flag value as a list (duplicates dropped, order kept); names the flag when a value is bad."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: an empty item; give comma-separated values such as 1,2,4,8")
        try:
            value = convert(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: {part!r} is not a valid value") from None
        if value not in values:
            values.append(value)
    return values


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a name under models/ (gpt2, gpt2-medium, gpt2-large, gpt2-xl) or a path to such a JSON; comma-separated for a sweep")
    p.add_argument("--micro-batch", default="8", help="sequences per step (default 8); comma-separated for a sweep, e.g. 1,2,4,8")
    p.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence (default 1024)")
    p.add_argument("--mode", choices=["eager", "compile", "both"], default="both")
    p.add_argument("--compile-mode", default="default", help="torch.compile mode: default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs")
    p.add_argument("--precision", default="bf16", help="bf16 (fp32 weights, bf16 autocast; default) | fp32 (no autocast); comma-separated for a sweep")
    p.add_argument("--checkpointing", choices=sorted(CHECKPOINTING), default=None, help="activation checkpointing: off (default) | on | both")
    p.add_argument("--grad-checkpointing", action="store_true", help="the same as --checkpointing on")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5 eager, 10 compile)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--budget-s", type=float, default=None, help="start no run once this many seconds have passed since the script started (skipped runs get an error line)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=None, help="append the JSON lines to this file as well (each flushed as it is written)")
    p.add_argument("--dry-run", action="store_true", help="print the plan of runs and the model configs; do not import torch")
    args = p.parse_args(argv)
    try:
        args.models = split_list("--model", args.model)
        args.micro_batches = split_list("--micro-batch", args.micro_batch, int)
        args.precisions = split_list("--precision", args.precision.lower())
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    bad = [x for x in args.precisions if x not in PRECISION_DETAIL]
    if bad:
        p.error(f"--precision {args.precision}: {', '.join(bad)} unknown; give bf16, fp32 or bf16,fp32")
    if any(mb < 1 for mb in args.micro_batches):
        p.error(f"--micro-batch {args.micro_batch}: every micro-batch must be at least 1")
    if args.grad_checkpointing and args.checkpointing not in (None, "on"):
        p.error(f"--grad-checkpointing with --checkpointing {args.checkpointing}: they disagree; give one of them")
    args.checkpointing_values = CHECKPOINTING["on" if args.grad_checkpointing else (args.checkpointing or "off")]
    for name in ("seq_len", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    if args.budget_s is not None and args.budget_s <= 0:
        p.error(f"--budget-s {args.budget_s}: must be positive (seconds since the script started)")
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


def param_count(spec: dict) -> int:
    """GPT-2 parameters from the shape (tied head counted once); orders the sweep, smallest first."""
    d, ffn, layers = spec["hidden_size"], spec["ffn_size"], spec["num_layers"]
    per_layer = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * ffn + ffn) + (ffn * d + d)
    head = 0 if spec.get("tied_embeddings", True) else spec["vocab_size"] * d
    return spec["vocab_size"] * d + spec.get("max_seq_len", 1024) * d + layers * per_layer + 2 * d + head


def modes(args: argparse.Namespace) -> list[str]:
    return ["eager", "compile"] if args.mode == "both" else [args.mode]


def warmup_for(args: argparse.Namespace, mode: str) -> int:
    return args.warmup if args.warmup is not None else (10 if mode == "compile" else 5)


def plan_runs(args: argparse.Namespace, specs: list[dict]) -> list[dict]:
    """The cartesian product, smallest model first, then mode, micro-batch (ascending), precision, checkpointing off before on."""
    ordered = sorted(specs, key=param_count)  # stable: equal sizes keep the --model order
    return [dict(spec=spec, mode=mode, micro_batch=mb, precision=prec, grad_checkpointing=ckpt)
            for spec in ordered for mode in modes(args) for mb in sorted(args.micro_batches)
            for prec in args.precisions for ckpt in args.checkpointing_values]


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on an ascending list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


TIMING_FIELDS = ("median_ms", "p10_ms", "p90_ms", "min_ms", "max_ms", "tokens_per_s", "tokens_per_s_median", "warmup_s",
                 "first_loss", "last_loss", "peak_allocated_bytes", "peak_reserved_bytes")


def base_record(args: argparse.Namespace, run: dict, env: dict) -> dict:
    """The fields every line has, a failed or skipped run's too (timings null until measured)."""
    mode = run["mode"]
    record = {"impl": f"torch-{mode}", "model": run["spec"]["name"], "micro_batch": run["micro_batch"], "seq_len": args.seq_len,
              "precision": run["precision"], "precision_detail": PRECISION_DETAIL[run["precision"]],
              "grad_checkpointing": run["grad_checkpointing"], "checkpoint_use_reentrant": None,
              "steps": args.steps, "warmup": warmup_for(args, mode), "compile_mode": args.compile_mode if mode == "compile" else None,
              "attention": None, "run_s": None}
    record.update({k: None for k in TIMING_FIELDS})
    record.update(env)
    record.update(utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), error=None)
    return record


def torch_env(args: argparse.Namespace) -> dict:
    """The versions, GPU name and TF32 switches, read once (torch's defaults are left alone, only recorded)."""
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "gpu": torch.cuda.get_device_name(args.device),
            "allow_tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32), "allow_tf32_cudnn": bool(torch.backends.cudnn.allow_tf32)}


def build_model(spec: dict, seq_len: int, device: str):
    """GPT2LMHeadModel with sdpa attention, initialised on the device (a 1.5B model's CPU init would cost seconds per run)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(**gpt2_config_kwargs(spec, seq_len))
    with torch.device(device):
        try:
            return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")
        except (TypeError, AttributeError):  # a transformers without that keyword: set it on the config
            config._attn_implementation = "sdpa"
            return GPT2LMHeadModel(config)


def enable_checkpointing(model) -> bool | None:
    """Activation checkpointing on every block; non-reentrant where transformers takes the keyword. Returns use_reentrant (None: its default)."""
    try:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return False
    except TypeError:  # transformers before 4.35: no kwargs, its own (reentrant) default
        model.gradient_checkpointing_enable()
        return None


def run_one(args: argparse.Namespace, run: dict, env: dict) -> dict:
    import contextlib
    import gc
    import torch

    spec, mode = run["spec"], run["mode"]
    record = base_record(args, run, env)
    started = time.perf_counter()
    model = opt = step_fn = batches = None
    try:
        torch.cuda.reset_peak_memory_stats(args.device)
        torch.manual_seed(args.seed)
        model = build_model(spec, args.seq_len, args.device)
        record["attention"] = getattr(model.config, "_attn_implementation", None)  # what transformers actually chose
        model = model.to(args.device)
        model.config.use_cache = False
        if run["grad_checkpointing"]:
            record["checkpoint_use_reentrant"] = enable_checkpointing(model)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, fused=True)
        step_fn = model if mode == "eager" else torch.compile(model, mode=None if args.compile_mode == "default" else args.compile_mode)
        gen = torch.Generator(device=args.device).manual_seed(args.seed)
        batches = [torch.randint(0, spec["vocab_size"], (run["micro_batch"], args.seq_len), device=args.device, generator=gen) for _ in range(4)]
        losses: list[float] = []
        autocast = (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if run["precision"] == "bf16" else contextlib.nullcontext

        def step(i: int) -> torch.Tensor:
            tokens = batches[i % len(batches)]
            with autocast():
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
        torch.cuda.reset_peak_memory_stats(args.device)

        times_ms = []
        for i in range(args.steps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            loss = step(record["warmup"] + i)
            end.record()
            end.synchronize()
            times_ms.append(start.elapsed_time(end))
            losses.append(float(loss))
        tokens = run["micro_batch"] * args.seq_len
        ordered = sorted(times_ms)
        record.update(
            median_ms=round(percentile(ordered, 0.5), 3), p10_ms=round(percentile(ordered, 0.1), 3), p90_ms=round(percentile(ordered, 0.9), 3),
            min_ms=round(ordered[0], 3), max_ms=round(ordered[-1], 3),
            tokens_per_s=round(tokens * args.steps / (sum(times_ms) / 1e3), 1),
            tokens_per_s_median=round(tokens / (percentile(ordered, 0.5) / 1e3), 1),
            first_loss=losses[0], last_loss=losses[-1],
            peak_allocated_bytes=torch.cuda.max_memory_allocated(args.device), peak_reserved_bytes=torch.cuda.max_memory_reserved(args.device))
    except Exception as e:  # noqa: BLE001 - any failure (OOM, compile) is recorded in the line, not lost
        record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        # Drop every reference (the closure's cells too) before the next run in this process, then give the memory back.
        model = opt = step_fn = batches = None
        try:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(args.device)
            torch._dynamo.reset()
        except Exception as e:  # noqa: BLE001 - a broken CUDA context: say so in this line; the next runs will say it too
            record["error"] = record["error"] or f"cleanup {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        record["run_s"] = round(time.perf_counter() - started, 3)
    return record


def emit(record: dict, out: str | None) -> None:
    """One JSON line to stdout and, with --out, appended and flushed (a killed sweep keeps every finished line)."""
    line = json.dumps(record)
    print(line, flush=True)
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


def main(argv: list[str]) -> int:
    t_start = time.monotonic()
    args = parse_args(argv)
    specs = [load_spec(m) for m in args.models]
    configs = {spec["name"]: gpt2_config_kwargs(spec, args.seq_len) for spec in specs}  # refuses a too-long --seq-len before any run
    runs = plan_runs(args, specs)
    if args.dry_run:
        print(json.dumps({"plan_runs": len(runs), "budget_s": args.budget_s,
                          "models_smallest_first": [{"model": s["name"], "parameters": param_count(s), "gpt2_config": configs[s["name"]]}
                                                    for s in sorted(specs, key=param_count)]}))
        for run in runs:
            print(json.dumps({"plan": f"torch-{run['mode']}", "model": run["spec"]["name"], "micro_batch": run["micro_batch"], "seq_len": args.seq_len,
                              "precision": run["precision"], "precision_detail": PRECISION_DETAIL[run["precision"]],
                              "grad_checkpointing": run["grad_checkpointing"],
                              "warmup": warmup_for(args, run["mode"]), "steps": args.steps,
                              "compile_mode": args.compile_mode if run["mode"] == "compile" else None,
                              "optimizer": "torch.optim.AdamW(fused=True)", "attention": "sdpa"}))
        return 0
    env = torch_env(args)
    failed = False
    longest: dict[str, float] = {}  # model -> its longest run so far (s): the guess for its next run
    for run in runs:
        elapsed = time.monotonic() - t_start
        name = run["spec"]["name"]
        if args.budget_s is not None and elapsed + longest.get(name, 0.0) >= args.budget_s:
            record = base_record(args, run, env)
            record["error"] = "skipped: budget"
            record["budget_note"] = f"{elapsed:.1f} s elapsed + {longest.get(name, 0.0):.1f} s (longest earlier {name} run) >= --budget-s {args.budget_s:g}"
        else:
            record = run_one(args, run, env)
            longest[name] = max(longest.get(name, 0.0), record["run_s"])
        failed |= record["error"] is not None
        emit(record, args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
