using System.Globalization;

namespace AiOs.Planner.Engine.Launch;

/// <summary>
/// The minimal <c>train.py</c> of a launch folder: a Hugging Face causal LM (a named model, or random weights from the
/// folder's config.json) trained through <c>deepspeed.initialize(model=…, model_parameters=…, config=…)</c> on random
/// token ids. With ZeRO-3 the model is built inside DeepSpeed's <c>zero.Init</c> (via transformers' HfDeepSpeedConfig),
/// so no rank ever holds the whole model.
/// </summary>
internal static class DeepSpeedTrainScript
{
    public static string Text(DeepSpeedLaunchRequest r) => string.Create(CultureInfo.InvariantCulture, $$""""
        #!/usr/bin/env python3
        """Written by `aios launch` for {{r.Model.Name}}: trains a Hugging Face causal LM with DeepSpeed and ds_config.json.

        Run it through launch.sh (the deepspeed launcher starts one process per GPU and passes --local_rank).
        The data is random token ids, enough to measure a step and check that the settings fit; for real data,
        replace batches() with your tokenized corpus.
        """
        import argparse
        import json
        import os
        import time

        import deepspeed
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM
        from transformers.integrations import HfDeepSpeedConfig


        def parse_args():
            p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
            p.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", "-1")),
                           help="set by the deepspeed launcher")
            p.add_argument("--hf-model", default=None, help="Hugging Face model id or folder to fine-tune")
            p.add_argument("--model-config", default=None, help="folder with a config.json: train from random weights")
            p.add_argument("--steps", type=int, default={{r.Steps}}, help="optimizer steps")
            p.add_argument("--seq-len", type=int, default={{r.SeqLen}}, help="tokens per sequence")
            p.add_argument("--seed", type=int, default=0)
            p = deepspeed.add_config_arguments(p)  # --deepspeed, --deepspeed_config
            args = p.parse_args()
            if (args.hf_model is None) == (args.model_config is None):
                p.error("give exactly one of --hf-model NAME and --model-config FOLDER")
            if not args.deepspeed_config:
                p.error("--deepspeed_config ds_config.json is required")
            return args


        def batches(vocab_size, micro_batch, seq_len, device, seed):
            generator = torch.Generator().manual_seed(seed)
            while True:
                tokens = torch.randint(0, vocab_size, (micro_batch, seq_len), generator=generator)
                yield tokens.to(device)


        def main():
            args = parse_args()
            deepspeed.init_distributed()
            with open(args.deepspeed_config) as f:
                config = json.load(f)
            # Must stay referenced until the model is built: with ZeRO-3 it makes transformers build the model inside
            # deepspeed.zero.Init, partitioned across ranks from the start.
            hf_deepspeed_config = HfDeepSpeedConfig(config)  # noqa: F841
            if args.hf_model:
                model = AutoModelForCausalLM.from_pretrained(args.hf_model)
            else:
                model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.model_config))
            engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
            rank = torch.distributed.get_rank()
            seed = args.seed * 1000 + rank  # each rank its own data, as data parallel needs
            data = batches(model.config.vocab_size, engine.train_micro_batch_size_per_gpu(), args.seq_len, engine.device, seed)
            tokens_per_step = engine.train_batch_size() * args.seq_len
            for step in range(1, args.steps + 1):
                start = time.time()
                for _ in range(engine.gradient_accumulation_steps()):
                    tokens = next(data)
                    loss = engine(input_ids=tokens, labels=tokens).loss
                    engine.backward(loss)
                    engine.step()
                if rank == 0:
                    seconds = time.time() - start
                    print(f"step {step}/{args.steps} loss {loss.item():.4f} {seconds:.2f} s {tokens_per_step / seconds:,.0f} tokens/s", flush=True)


        if __name__ == "__main__":
            main()

        """");
}
