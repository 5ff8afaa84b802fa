#!/usr/bin/env python3
"""PyTorch reference figures for `cargo xtask bench train`.

Does what rung-train's `examples/bench_train.rs` measures, on the batches that program dumps
(`--batches FILE`, written by `bench_train --dump FILE`), and prints one JSON object with the
same schema:

- the model: transformers' causal LM built from the HF config.json of the rung preset (Llama
  family for the presets), float32, seeded random weights;
- each step: forward over the batch's rows (padded to the longest row, attention mask from the
  row lengths), masked cross-entropy (position t predicts token t+1 where token t+1 has loss
  mask 1, summed and divided by the step's supervised tokens), backward,
  clip_grad_norm_(max_grad_norm), torch.optim.AdamW (weight decay only on matrices that are
  not embeddings, as rung) with the learning rate rung's schedule gives that step;
- mode full: every parameter trains; mode lora: PEFT LoRA (rank, alpha and dropout from the
  dump) on q, k, v, o, gate, up and down of every layer, base frozen;
- `warmup` steps, then `steps` timed steps: tokens/s = real (non-padding) tokens of the timed
  steps / their wall time; memory: VmRSS after setup and the process's peak VmHWM at the end,
  from /proc/self/status.

Run one mode per process, so peaks do not mix (`cargo xtask bench train` does). Needs torch,
transformers and, for LoRA, peft:

    python -m venv .venv-ref && .venv-ref/bin/pip install torch transformers peft
    RUNG_PYTHON=.venv-ref/bin/python cargo xtask bench train
"""

import argparse
import json
import sys
import time

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def status_mb(field):
    """A field of /proc/self/status in MB (VmRSS, VmHWM); 0 where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", required=True, help="the JSON written by bench_train --dump")
    p.add_argument("--mode", choices=["full", "lora"], default="full")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--attn", default="sdpa", help="transformers attn_implementation (sdpa or eager)")
    return p.parse_args()


def main():
    args = parse_args()
    try:
        import torch
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError as e:
        print(json.dumps({"error": f"missing Python package: {e.name}"}))
        return 3
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    with open(args.batches) as f:
        spec = json.load(f)
    hf = {k: v for k, v in spec["hf_config"].items() if v is not None}
    config = AutoConfig.for_model(hf.pop("model_type"), **hf)
    config._attn_implementation = args.attn
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=args.attn)
    params = sum(p.numel() for p in model.parameters())
    if args.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = spec["lora"]
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora["rank"],
                lora_alpha=lora["alpha"],
                lora_dropout=lora["dropout"],
                target_modules=LORA_TARGETS,
                bias="none",
                task_type="CAUSAL_LM",
            ),
        )
    model.train()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in trainable if not (p.ndim >= 2 and "embed" not in n)]
    o = spec["optim"]
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec["lr"][0],
        betas=tuple(o["betas"]),
        eps=o["eps"],
    )

    def tensors(b):
        rows, seq = b["rows"], b["seq_len"]
        ids = torch.tensor(b["input_ids"], dtype=torch.long).view(rows, seq)
        mask = torch.tensor(b["loss_mask"], dtype=torch.float32).view(rows, seq)
        lengths = torch.tensor(b["lengths"])
        attention = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        return ids, mask, attention

    batches = [tensors(b) for b in spec["batches"]]
    params_to_clip = [p for _, p in trainable]
    rss_setup = status_mb("VmRSS")

    def step(i):
        ids, mask, attention = batches[i]
        for group in optim.param_groups:
            group["lr"] = spec["lr"][i]
        logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits
        vocab = logits.shape[-1]
        weights = mask[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, vocab).float(), ids[:, 1:].reshape(-1), reduction="none"
        )
        loss = (nll * weights.reshape(-1)).sum() / weights.sum().clamp(min=1.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params_to_clip, o["max_grad_norm"])
        optim.step()
        optim.zero_grad(set_to_none=True)
        return loss.item()

    warmup, steps = spec["warmup"], spec["steps"]
    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()
    loss = None
    for i in range(warmup, warmup + steps):
        loss = step(i)
    seconds = time.perf_counter() - t0
    measured = spec["batches"][warmup : warmup + steps]
    tokens = sum(sum(b["lengths"]) for b in measured)
    out = {
        "framework": "pytorch",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "attn_implementation": args.attn,
        "threads": torch.get_num_threads(),
        "mode": args.mode,
        "params": params,
        "trainable_params": sum(p.numel() for p in params_to_clip),
        "tokens_per_s": tokens / seconds,
        "step_s": seconds / steps,
        "tokens": tokens,
        "padded_tokens": sum(b["rows"] * b["seq_len"] for b in measured),
        "supervised_tokens": sum(sum(b["loss_mask"]) for b in measured),
        "final_loss": loss,
        "rss_setup_mb": rss_setup,
        "peak_rss_mb": status_mb("VmHWM"),
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
