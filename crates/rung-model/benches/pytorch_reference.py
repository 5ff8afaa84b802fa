#!/usr/bin/env python3
"""PyTorch reference figures for `cargo xtask bench model`.

Measures the same three things as rung-model's `examples/bench_model.rs`, on the same
architecture, shapes and thread count, and prints one JSON object with the same schema:

- train_full: forward, mean token cross-entropy over every position, backward and a
  torch.optim.AdamW step on every parameter (batch x seq random tokens);
- train_lora: the same with PEFT LoRA (rank r, alpha 2r, no dropout) on q, k, v, o, gate, up and
  down of every layer, base frozen;
- decode: HF `generate` with its KV cache, greedy, decode_batch prompts of prompt_len random
  tokens, exactly new_tokens new tokens each (min_new_tokens = max_new_tokens, no EOS);
  tokens/s = decode_batch * new_tokens / wall time (prefill included); prefill_s is the time of
  the same call with one new token.

The model is transformers' LlamaForCausalLM built from the HF config.json that rung writes for the
preset (`--config`, as `cargo xtask bench model` passes it); without `--config` the `base` preset's
values are used. Only needs torch, transformers and (for LoRA) peft:

    python -m venv .venv-ref && .venv-ref/bin/pip install torch transformers peft
    RUNG_PYTHON=.venv-ref/bin/python cargo xtask bench model
"""

import argparse
import json
import sys
import time

# The `base` preset of rung-model (crates/rung-model/src/config.rs), for standalone runs.
BASE_PRESET = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 384,
    "intermediate_size": 1024,
    "num_hidden_layers": 5,
    "num_attention_heads": 6,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "vocab_size": 4096,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "mlp_bias": False,
}

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="HF config.json of the model (default: rung's base preset)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--decode-batch", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--decode-runs", type=int, default=2)
    p.add_argument("--only", default="train_full,train_lora,decode")
    p.add_argument(
        "--attn",
        default="sdpa",
        help="transformers attn_implementation: sdpa (default, fused) or eager",
    )
    return p.parse_args()


def main():
    args = parse_args()
    try:
        import torch
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        print(
            json.dumps(
                {
                    "error": f"missing Python package: {e.name}",
                    "install": "pip install torch transformers peft",
                }
            )
        )
        return 3

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    if args.config:
        with open(args.config) as f:
            hf = json.load(f)
    else:
        hf = dict(BASE_PRESET)
    hf = {k: v for k, v in hf.items() if v is not None}
    hf["use_cache"] = True
    config = LlamaConfig(**hf)
    config._attn_implementation = args.attn
    vocab = config.vocab_size

    def build():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        model.config._attn_implementation = args.attn
        return model

    params = sum(p.numel() for p in build().parameters())
    only = set(args.only.split(","))
    results = {}
    gen = torch.Generator().manual_seed(1)

    def bench_train(model, trainable):
        model.train()
        ids = torch.randint(0, vocab, (args.batch, args.seq), generator=gen)
        targets = torch.randint(0, vocab, (args.batch * args.seq,), generator=gen)
        optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        fwd = bwd = opt = 0.0
        loss_value = 0.0
        for step in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            logits = model(input_ids=ids, use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab).float(), targets)
            loss_value = loss.item()
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            optim.step()
            optim.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            if step >= args.warmup:
                fwd += t1 - t0
                bwd += t2 - t1
                opt += t3 - t2
        n = args.steps
        step_s = (fwd + bwd + opt) / n
        return {
            "tokens_per_s": args.batch * args.seq / step_s,
            "step_s": step_s,
            "forward_s": fwd / n,
            "backward_s": bwd / n,
            "optimizer_s": opt / n,
            "steps": n,
            "trainable_params": trainable,
            "final_loss": loss_value,
        }

    if "train_full" in only:
        print("pytorch_reference: train_full ...", file=sys.stderr)
        model = build()
        results["train_full"] = bench_train(model, sum(p.numel() for p in model.parameters()))
        del model

    if "train_lora" in only:
        print("pytorch_reference: train_lora ...", file=sys.stderr)
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            results["train_lora"] = {"error": "peft is not installed (pip install peft)"}
        else:
            lora = LoraConfig(
                r=args.lora_rank,
                lora_alpha=2 * args.lora_rank,
                lora_dropout=0.0,
                target_modules=LORA_TARGETS,
                bias="none",
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(build(), lora)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            results["train_lora"] = bench_train(model, trainable)
            del model

    if "decode" in only:
        print("pytorch_reference: decode ...", file=sys.stderr)
        model = build().eval()
        prompts = torch.randint(0, vocab, (args.decode_batch, args.prompt_len), generator=gen)
        mask = torch.ones_like(prompts)

        def run(new_tokens):
            t = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(
                    input_ids=prompts,
                    attention_mask=mask,
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    use_cache=True,
                    eos_token_id=None,
                    pad_token_id=0,
                )
            return time.perf_counter() - t, out.shape[1] - args.prompt_len

        run(min(args.new_tokens, 8))
        prefill = total = float("inf")
        generated = 0
        for _ in range(args.decode_runs):
            prefill = min(prefill, run(1)[0])
            seconds, new = run(args.new_tokens)
            if seconds < total:
                total, generated = seconds, new * args.decode_batch
        results["decode"] = {
            "tokens_per_s": generated / total,
            "seconds": total,
            "prefill_s": prefill,
            "decode_only_tokens_per_s": (generated - args.decode_batch) / (total - prefill),
            "generated_tokens": generated,
            "runs": args.decode_runs,
        }

    out = {
        "framework": "pytorch",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "attn_implementation": args.attn,
        "threads": torch.get_num_threads(),
        "params": params,
        "shapes": {
            "batch": args.batch,
            "seq": args.seq,
            "lora_rank": args.lora_rank,
            "decode_batch": args.decode_batch,
            "prompt_len": args.prompt_len,
            "new_tokens": args.new_tokens,
        },
        "results": results,
    }
    try:
        import peft

        out["versions"]["peft"] = peft.__version__
    except ImportError:
        pass
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
