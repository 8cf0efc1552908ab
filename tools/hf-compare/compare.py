#!/usr/bin/env python3
"""Compare the aios engine with Hugging Face transformers on the same weights (issue 12, item 17).

For a small GPT-2 and a small Llama, built from config objects (no hub access) with a seeded random
initialisation:

  1. transformers -> aios: save_pretrained (safetensors), load it with `aios logits --init-from`, and
     compare logits and next-token loss on a fixed batch with transformers' own, in fp32 and bf16.
  2. aios -> transformers: `aios train --init-from` that folder for 2 steps with a checkpoint, `aios
     export-hf` the checkpoint, load it with from_pretrained (strict: no missing or unexpected tensors)
     and compare its logits with `aios logits` on the exported folder (and on the checkpoint itself).

Every 1-D parameter (norm weights, biases) is perturbed after the default initialisation, which sets
them to exactly 1 and 0: a misplaced bias or norm weight would otherwise be invisible.

Writes a markdown table to OUT/hf-compare.md (and the raw numbers to OUT/hf-compare.json).
Exit status: 0 when every check is within its tolerance, 1 otherwise.

Usage on the GPU machine, from the repository root (.device holds the packed CLI):
    python3 tools/hf-compare/compare.py --aios "bash .device/run.sh" --device cuda --out "$OUT"
On a CPU machine with torch and transformers installed:
    python3 tools/hf-compare/compare.py --aios "dotnet src/AiOs.Planner.Cli/bin/Debug/net10.0/aios.dll" --device cpu
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--aios", required=True, help='command prefix that runs the aios CLI, e.g. "bash .device/run.sh"')
    p.add_argument("--device", default="cuda", help="cpu | cuda (both transformers and aios run there)")
    p.add_argument("--out", default=os.environ.get("OUT", "hf-compare-out"), help="folder for hf-compare.md and .json (default: $OUT)")
    p.add_argument("--work", default=None, help="scratch folder for models, runs and logits (default: a temporary folder)")
    p.add_argument("--families", default="gpt2,llama", help="comma-separated: gpt2, llama")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--train-steps", type=int, default=2)
    p.add_argument("--fp32-tol", type=float, default=1e-4, help="max |logit difference| and |loss difference| allowed in fp32")
    p.add_argument("--bf16-logit-tol", type=float, default=5e-2, help="max |logit difference| allowed in bf16")
    p.add_argument("--bf16-loss-tol", type=float, default=1e-2, help="|loss difference| allowed in bf16")
    p.add_argument("--attn", default="sdpa", help="transformers attn_implementation: sdpa | eager")
    p.add_argument("--timeout", type=int, default=600, help="seconds one aios command may take")
    return p.parse_args()


@dataclass
class Row:
    family: str
    check: str
    precision: str
    max_abs: float | None = None
    mean_abs: float | None = None
    loss_aios: float | None = None
    loss_ref: float | None = None
    logit_tol: float | None = None
    loss_tol: float | None = None
    note: str = ""
    informational: bool = False
    failed: str | None = None

    @property
    def passed(self) -> bool:
        if self.failed is not None:
            return False
        if self.informational:
            return True
        ok = self.max_abs is not None and self.logit_tol is not None and self.max_abs <= self.logit_tol
        if self.loss_tol is not None and self.loss_aios is not None and self.loss_ref is not None:
            ok = ok and abs(self.loss_aios - self.loss_ref) <= self.loss_tol
        return ok


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.log.append(line)


def fmt(x: float | None, spec: str = ".3e") -> str:
    return "–" if x is None else format(x, spec)


def write_outputs(report: Report, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    lines = ["# aios vs transformers: logits and loss on the same weights", ""]
    lines += [f"- {k}: {v}" for k, v in report.facts.items()]
    lines += ["", "| family | check | precision | max abs Δlogit | mean abs Δlogit | aios loss | transformers loss | Δloss | tolerance (logits / loss) | result |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.rows:
        dloss = None if r.loss_aios is None or r.loss_ref is None else abs(r.loss_aios - r.loss_ref)
        tol = "info" if r.informational else f"{fmt(r.logit_tol, '.0e')} / {fmt(r.loss_tol, '.0e')}"
        result = f"FAIL: {r.failed}" if r.failed else ("info" if r.informational else ("pass" if r.passed else "FAIL"))
        check = r.check + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.family} | {check} | {r.precision} | {fmt(r.max_abs)} | {fmt(r.mean_abs)} | {fmt(r.loss_aios, '.6f')} | "
                     f"{fmt(r.loss_ref, '.6f')} | {fmt(dloss)} | {tol} | {result} |")
    lines += ["", "## Log", "", "```", *report.log, "```", ""]
    text = "\n".join(lines)
    tmp = os.path.join(out, ".hf-compare.md.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(out, "hf-compare.md"))
    tmp = os.path.join(out, ".hf-compare.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"facts": report.facts, "rows": [r.__dict__ | {"passed": r.passed} for r in report.rows]}, f, indent=2)
    os.replace(tmp, os.path.join(out, "hf-compare.json"))


class Aios:
    """Runs the aios CLI through the given command prefix; a failure raises with the output's tail."""

    def __init__(self, prefix: str, report: Report, timeout: int):
        self.prefix = shlex.split(prefix)
        self.report = report
        self.timeout = timeout

    def __call__(self, *args: str) -> str:
        cmd = self.prefix + list(args)
        self.report.say("$ aios " + " ".join(shlex.quote(a) for a in args))
        started = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        output = (proc.stdout + proc.stderr).strip()
        tail = "\n".join(output.splitlines()[-15:])
        self.report.say(f"  (exit {proc.returncode}, {time.time() - started:.1f} s) " + tail.replace("\n", "\n  "))
        if proc.returncode != 0:
            raise RuntimeError(f"aios {args[0]} exited {proc.returncode}: {tail[-400:]}")
        return proc.stdout


def build_config(family: str, seq: int):
    from transformers import GPT2Config, LlamaConfig
    if family == "gpt2":
        return GPT2Config(vocab_size=50257, n_positions=max(256, seq), n_embd=256, n_layer=4, n_head=4,
                          activation_function="gelu_new", layer_norm_epsilon=1e-5,
                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True)
    if family == "llama":
        return LlamaConfig(vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max(256, seq),
                           # rope_theta is left at its default, 10000, in every transformers version (v5 moved it
                           # into rope_parameters, so passing it by name is not portable).
                           rms_norm_eps=1e-5, tie_word_embeddings=False,
                           attention_bias=False, mlp_bias=False)
    raise SystemExit(f"unknown family {family!r}: use gpt2 or llama")


def dtype_kwarg(dtype) -> dict:
    """transformers 5 names the argument dtype; 4.x calls it torch_dtype."""
    import transformers
    return {"dtype": dtype} if int(transformers.__version__.split(".")[0]) >= 5 else {"torch_dtype": dtype}


def reference(model_dir: str, ids, device: str, precision: str, attn: str, strict: bool = False):
    """transformers' logits (fp32 copy, on CPU) and loss with labels=input_ids, loading model_dir."""
    import torch
    from transformers import AutoModelForCausalLM
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    model, info = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn, output_loading_info=True, **dtype_kwarg(dtype))
    if strict:
        problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
        if problems:
            raise RuntimeError(f"from_pretrained({model_dir}) reported {problems}")
    model = model.to(device).eval()
    with torch.no_grad():
        out = model(input_ids=ids.to(device), labels=ids.to(device))
    return out.logits.float().cpu(), float(out.loss)


def aios_logits(aios: Aios, work: str, tag: str, model: str, init_from: str, tokens: str, device: str, precision: str):
    from safetensors.torch import load_file
    path = os.path.join(work, f"logits-{tag}-{precision}.safetensors")
    aios("logits", "--model", model, "--init-from", init_from, "--tokens", tokens, "--out", path, "--device", device, "--precision", precision)
    with open(path[: -len(".safetensors")] + ".json") as f:
        summary = json.load(f)
    return load_file(path)["logits"], summary["loss"]


def diff(a, b) -> tuple[float, float]:
    d = (a.float() - b.float()).abs()
    return float(d.max()), float(d.mean())


def run_family(family: str, args, aios: Aios, report: Report, work: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tol = {"fp32": (args.fp32_tol, args.fp32_tol), "bf16": (args.bf16_logit_tol, args.bf16_loss_tol)}
    hf_dir = os.path.join(work, f"{family}-hf")
    config = build_config(family, args.seq)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, **dtype_kwarg(torch.float32))
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(hf_dir, safe_serialization=True)
    with open(os.path.join(hf_dir, "config.json")) as f:
        saved = json.load(f)
    report.say(f"{family}: saved {sum(p.numel() for p in model.parameters())} parameters to {hf_dir}; config keys: {sorted(saved)}")
    if family == "llama" and "rope_theta" not in saved:
        report.say("  note: config.json has no top-level rope_theta (aios's importer then assumes 10000, which this config uses)")

    gen = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=gen)
    tokens = os.path.join(work, f"{family}-tokens.json")
    with open(tokens, "w") as f:
        json.dump({"input_ids": ids.tolist()}, f)
    config_path = os.path.join(hf_dir, "config.json")

    # 1. transformers -> aios.
    ref = {}
    for precision in ("fp32", "bf16"):
        ref[precision] = reference(hf_dir, ids, args.device, precision, args.attn)
    for precision in ("fp32", "bf16"):
        row = Row(family, "save_pretrained → aios logits --init-from", precision, logit_tol=tol[precision][0], loss_tol=tol[precision][1])
        try:
            logits, loss = aios_logits(aios, work, f"{family}-hf", config_path, hf_dir, tokens, args.device, precision)
            row.max_abs, row.mean_abs = diff(logits, ref[precision][0])
            row.loss_aios, row.loss_ref = loss, ref[precision][1]
            if precision == "bf16":
                # How far each bf16 result is from fp32 truth: ours should be about as far as transformers' own.
                ours = Row(family, "bf16 vs fp32 transformers: aios", "bf16", informational=True, loss_aios=loss, loss_ref=ref["fp32"][1])
                ours.max_abs, ours.mean_abs = diff(logits, ref["fp32"][0])
                theirs = Row(family, "bf16 vs fp32 transformers: transformers", "bf16", informational=True, loss_aios=ref["bf16"][1], loss_ref=ref["fp32"][1])
                theirs.max_abs, theirs.mean_abs = diff(ref["bf16"][0], ref["fp32"][0])
                report.rows += [row, ours, theirs]
                continue
        except Exception as e:  # noqa: BLE001 - every failure becomes a row
            row.failed = str(e)[:300]
        report.rows.append(row)

    # 2. aios train -> export-hf -> transformers.
    runs = os.path.join(work, "runs")
    export_dir = os.path.join(work, f"{family}-export")
    row = Row(family, f"aios train {args.train_steps} steps → export-hf → from_pretrained", "fp32", logit_tol=args.fp32_tol, loss_tol=args.fp32_tol)
    stage = row
    try:
        aios("train", "--model", config_path, "--init-from", hf_dir, "--steps", str(args.train_steps), "--save-every", str(args.train_steps),
             "--seq-len", str(args.seq), "--micro-batch", "2", "--precision", "fp32", "--device", args.device, "--lr", "1e-3",
             "--runs-dir", runs, "--run-id", family, "--json")
        aios("export-hf", os.path.join(runs, family), "--model", config_path, "--out", export_dir)
        exported_ref = reference(export_dir, ids, args.device, "fp32", args.attn, strict=True)
        logits, loss = aios_logits(aios, work, f"{family}-export", os.path.join(export_dir, "config.json"), export_dir, tokens, args.device, "fp32")
        row.max_abs, row.mean_abs = diff(logits, exported_ref[0])
        row.loss_aios, row.loss_ref = loss, exported_ref[1]
        report.rows.append(row)
        stage = Row(family, "after export-hf", "fp32")

        checkpoint = os.path.join(runs, family, "checkpoints", f"step-{args.train_steps}")
        same = Row(family, "aios logits: exported folder vs the checkpoint itself", "fp32", logit_tol=0.0, loss_tol=0.0)
        cp_logits, cp_loss = aios_logits(aios, work, f"{family}-checkpoint", config_path, checkpoint, tokens, args.device, "fp32")
        same.max_abs, same.mean_abs = diff(logits, cp_logits)
        same.loss_aios, same.loss_ref = loss, cp_loss
        report.rows.append(same)

        moved = Row(family, "training moved the weights: exported vs initial (transformers)", "fp32", informational=True,
                    loss_aios=exported_ref[1], loss_ref=ref["fp32"][1])
        moved.max_abs, moved.mean_abs = diff(exported_ref[0], ref["fp32"][0])
        if moved.max_abs == 0:
            moved.informational, moved.failed = False, "the exported weights equal the initial ones: training changed nothing"
        report.rows.append(moved)

        bf16 = Row(family, "export-hf → from_pretrained", "bf16", logit_tol=args.bf16_logit_tol, loss_tol=args.bf16_loss_tol)
        exported_bf16 = reference(export_dir, ids, args.device, "bf16", args.attn, strict=True)
        logits16, loss16 = aios_logits(aios, work, f"{family}-export", os.path.join(export_dir, "config.json"), export_dir, tokens, args.device, "bf16")
        bf16.max_abs, bf16.mean_abs = diff(logits16, exported_bf16[0])
        bf16.loss_aios, bf16.loss_ref = loss16, exported_bf16[1]
        report.rows.append(bf16)
    except Exception as e:  # noqa: BLE001
        stage.failed = str(e)[:300]
        report.rows.append(stage)


def main() -> int:
    args = parse_args()
    report = Report()
    try:
        import torch
        import transformers
        import safetensors  # noqa: F401 - load_file is imported where used
    except ImportError as e:
        print(f"error: {e.name} is not installed here; this script needs torch, transformers and safetensors.", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device; pass --device cpu.", file=sys.stderr)
        return 2
    # fp32 means fp32: no TF32 in transformers' matmuls (aios's libtorch keeps PyTorch's default, also off).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    report.facts = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": platform.node(),
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_implementation": args.attn,
        "batch × seq": f"{args.batch} × {args.seq}",
        "seed": args.seed,
        "command": " ".join(shlex.quote(a) for a in sys.argv),
    }
    aios = Aios(args.aios, report, args.timeout)
    work = args.work or tempfile.mkdtemp(prefix="hf-compare-")
    os.makedirs(work, exist_ok=True)
    report.say(f"work folder: {work}")
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        try:
            run_family(family, args, aios, report, work)
        except Exception as e:  # noqa: BLE001 - a family that cannot even start is one failed row
            report.rows.append(Row(family, "setup", "–", failed=str(e)[:300]))
        write_outputs(report, args.out)
    write_outputs(report, args.out)
    with open(os.path.join(args.out, "hf-compare.md")) as f:
        text = f.read()
    print(text.split("## Log")[0])
    failed = [r for r in report.rows if not r.passed]
    print(f"{len(report.rows) - len(failed)} of {len(report.rows)} rows pass; wrote {os.path.join(args.out, 'hf-compare.md')}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
