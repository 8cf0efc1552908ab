#!/usr/bin/env python3
"""What PyTorch's caching allocator reserves beyond what a run allocates, on the pattern of DeepSpeed issue 1830's run
(issue 14; docs/memory-model.md, "Literature plans"): Megatron-LM v1.1.5's GPT layer in fp16 with --split-transformers
(attention and MLP checkpointed apart), checkpoints kept in host RAM (cpu_checkpointing), unfused fp16 softmax, the causal
mask by masked_fill_ in place on a view of the baddbmm output, dropout 0.1. The plan counts what the code allocates;
nvidia-smi read 19/31/51 GB at micro-batch 4/8/16 (3.0 then 2.5 GB per sample) where the plan grows 1.7 GiB per sample.
The open question is whether the allocator's segments (cached blocks split by smaller tensors) make the difference.

Weights stay on the device (the run's ZeRO-3 gathers are the same bytes at every micro-batch); layers are gradient
checkpointed by hand as DeepSpeed's CheckpointFunction with cpu_checkpointing does: each half's input is copied to
pinned host memory after its forward and back before its recompute. For each micro-batch, after one warm-up step:
torch.cuda.max_memory_allocated, max_memory_reserved, and memory_stats' peak inactive split bytes of one step, one JSON
line each (stdout, and --out appended). --snapshot DIR also writes torch.cuda.memory._snapshot() of the last step
(for an allocator replay). A micro-batch that runs out of memory writes its line with "error".

  python3 tools/bench/alloc_1830.py --micro-batch 1,2,4,8 --layers 4 --out alloc.jsonl      # one H100: hidden 10240
  python3 tools/bench/alloc_1830.py --hidden 768 --heads 12 --micro-batch 8,16 --layers 12  # issue 1830's GPT-2 small
  python3 tools/bench/alloc_1830.py --dry-run

Not yet run on a GPU (written 2026-12-08 on a machine without torch); expect to debug it on its first call.
"""
import argparse, json, os, sys, time


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=10240)
    p.add_argument("--heads", type=int, default=128)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--micro-batch", default="1,2,4,8")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--out")
    p.add_argument("--snapshot")
    p.add_argument("--dry-run", action="store_true")
    return p.parse_args()


def main():
    a = parse()
    mbs = [int(x) for x in a.micro_batch.split(",")]
    if a.dry_run:
        h, s = a.hidden, a.seq
        for b in mbs:
            print(json.dumps({"micro_batch": b, "score_matrix_mib": b * a.heads * s * s * 2 / 2**20,
                              "hidden_tensor_mib": b * s * h * 2 / 2**20, "weights_gib": a.layers * 12 * h * h * 2 / 2**30}))
        return 0
    import torch
    import torch.nn.functional as F

    dev = torch.device("cuda")
    h, n, s, p = a.hidden, a.heads, a.seq, a.dropout
    d = h // n
    torch.manual_seed(1234)

    def weight(o, i):
        return torch.nn.Parameter(torch.randn(o, i, device=dev, dtype=torch.half) * 0.02)

    layers = []
    for _ in range(a.layers):
        layers.append({
            "ln1": torch.nn.LayerNorm(h, device=dev, dtype=torch.half), "qkv": weight(3 * h, h), "qkv_b": torch.nn.Parameter(torch.zeros(3 * h, device=dev, dtype=torch.half)),
            "proj": weight(h, h), "ln2": torch.nn.LayerNorm(h, device=dev, dtype=torch.half),
            "fc1": weight(4 * h, h), "fc1_b": torch.nn.Parameter(torch.zeros(4 * h, device=dev, dtype=torch.half)), "fc2": weight(h, 4 * h),
        })
    mask_cache = {}

    def attention_half(x, L):
        # Megatron v1.1.5 ParallelSelfAttention with fusions off: [s, b, h] layout, baddbmm into an empty buffer, masked_fill_ on a view,
        # fp16 softmax, dropout, bmm with V, then the permuted contiguous copy and the output projection; bias-dropout-add by hand.
        sq, b, _ = x.shape
        y = F.layer_norm(x, (h,), L["ln1"].weight, L["ln1"].bias)
        qkv = F.linear(y, L["qkv"], L["qkv_b"]).view(sq, b, n, 3 * d)
        q, k, v = qkv.split(d, dim=-1)
        q = q.reshape(sq, b * n, d).transpose(0, 1)
        k = k.reshape(sq, b * n, d).transpose(0, 1)
        v = v.reshape(sq, b * n, d).transpose(0, 1)
        buf = torch.empty(b * n, sq, sq, dtype=torch.half, device=dev)
        scores = torch.baddbmm(buf, q, k.transpose(1, 2), beta=0.0, alpha=1.0 / d ** 0.5).view(b, n, sq, sq)
        del buf
        if sq not in mask_cache:
            mask_cache[sq] = torch.ones(sq, sq, device=dev, dtype=torch.bool).triu(1).view(1, 1, sq, sq)
        scores[:, :, :, :].masked_fill_(mask_cache[sq], -10000.0)
        probs = F.dropout(torch.softmax(scores, dim=-1), p, True)
        ctx = torch.bmm(probs.view(b * n, sq, sq), v).view(b, n, sq, d).permute(2, 0, 1, 3).contiguous().view(sq, b, h)
        return x + F.dropout(F.linear(ctx, L["proj"]), p, True)

    def mlp_half(x, L):
        y = F.layer_norm(x, (h,), L["ln2"].weight, L["ln2"].bias)
        return x + F.dropout(F.linear(F.gelu(F.linear(y, L["fc1"], L["fc1_b"])), L["fc2"]), p, True)

    class HostCheckpoint(torch.autograd.Function):
        """One checkpointed half: its input kept in pinned host memory between forward and backward (cpu_checkpointing)."""

        @staticmethod
        def forward(ctx, x, fn, L):
            ctx.fn, ctx.L = fn, L
            ctx.host = x.detach().to("cpu", non_blocking=False).pin_memory()
            ctx.rng = (torch.get_rng_state(), torch.cuda.get_rng_state())
            with torch.no_grad():
                return fn(x, L)

        @staticmethod
        def backward(ctx, grad):
            x = ctx.host.to(dev).requires_grad_(True)
            cpu_rng, cuda_rng = torch.get_rng_state(), torch.cuda.get_rng_state()
            torch.set_rng_state(ctx.rng[0]); torch.cuda.set_rng_state(ctx.rng[1])
            with torch.enable_grad():
                out = ctx.fn(x, ctx.L)
            torch.set_rng_state(cpu_rng); torch.cuda.set_rng_state(cuda_rng)
            torch.autograd.backward(out, grad)
            return x.grad, None, None

    def step(b):
        x = torch.randn(s, b, h, device=dev, dtype=torch.half, requires_grad=True)
        y = x
        for L in layers:
            y = HostCheckpoint.apply(y, attention_half, L)
            y = HostCheckpoint.apply(y, mlp_half, L)
        y.float().pow(2).mean().backward()
        for L in layers:
            for t in L.values():
                for q in (t.parameters() if isinstance(t, torch.nn.Module) else [t]):
                    q.grad = None

    lines = []
    for b in mbs:
        row = {"micro_batch": b, "hidden": h, "heads": n, "seq": s, "layers": a.layers, "dropout": p,
               "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            step(b)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            if a.snapshot:
                torch.cuda.memory._record_memory_history(max_entries=200000)
            step(b)
            torch.cuda.synchronize()
            stats = torch.cuda.memory_stats()
            row.update({"peak_allocated_bytes": torch.cuda.max_memory_allocated(), "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
                        "peak_inactive_split_bytes": stats.get("inactive_split_bytes.all.peak"), "segments": stats.get("segment.all.current"),
                        "weights_bytes": sum(t.numel() * t.element_size() for L in layers for t in L.values() if isinstance(t, torch.Tensor))})
            if a.snapshot:
                os.makedirs(a.snapshot, exist_ok=True)
                import pickle
                with open(os.path.join(a.snapshot, f"mb{b}.pickle"), "wb") as f:
                    pickle.dump(torch.cuda.memory._snapshot(), f)
                torch.cuda.memory._record_memory_history(enabled=None)
            row["error"] = None
        except torch.cuda.OutOfMemoryError as e:
            row["error"] = "out of memory: " + str(e).splitlines()[0]
        line = json.dumps(row)
        print(line, flush=True)
        lines.append(row)
        if a.out:
            with open(a.out, "a") as f:
                f.write(line + "\n")
        torch.cuda.empty_cache()
    return 0 if all(r["error"] is None for r in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
