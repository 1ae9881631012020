#!/usr/bin/env python3
"""Times Hugging Face transformers on a checkpoint on CPU, the way `moecap generate` is timed:
one prefill pass over `batch` prompts of `prompt_len` tokens (time to first token), then greedy
decode steps with the KV cache (mean step time). Prints one JSON line.

usage: torch_speed.py DIR --batch B --prompt-len N --new-tokens M --threads T --ids FILE"""

import argparse
import json
import time

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ids", required=True, help="file with comma-separated prompt ids")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = transformers.AutoConfig.from_pretrained(a.model)
    cfg._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_pretrained(
        a.model, config=cfg, dtype=torch.float32
    ).eval()
    ids = [int(x) for x in open(a.ids).read().strip().split(",")][: a.prompt_len]
    x = torch.tensor([ids] * a.batch)
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(x, use_cache=True)
        ttft = time.perf_counter() - t0
        past = out.past_key_values
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        steps = []
        for _ in range(a.new_tokens - 1):
            t = time.perf_counter()
            out = model(tok, past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = out.logits[:, -1].argmax(-1, keepdim=True)
            steps.append(time.perf_counter() - t)
    print(json.dumps({
        "engine": "transformers " + transformers.__version__ + ", torch " + torch.__version__,
        "batch": a.batch, "prompt_len": a.prompt_len, "threads": a.threads,
        "ttft_s": ttft, "mean_tpot_s": sum(steps) / len(steps),
    }))


if __name__ == "__main__":
    main()
