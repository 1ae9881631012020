#!/usr/bin/env python3
"""Checks `moecap upcycle` on a real GGUF model against Hugging Face transformers' own GGUF
loader: token ids of sample texts (moecap's tokenizer.json vs transformers' conversion of the
GGUF tokenizer) and full logits of the dense conversion (`moecap logits`) vs transformers'
dequantised model. Prints one line per check.

usage: check_upcycle.py MODEL.gguf UPCYCLED_DENSE_DIR MOECAP_BINARY   (needs torch, transformers, gguf)"""

import os
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file
from tokenizers import Tokenizer

TEXTS = [
    "The capital of France is Paris.",
    "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.\nAnswer:",
    "  leading spaces, numbers 12345 and 3.14159, symbols #$%&*, emoji \u2764 and accents caf\u00e9.",
    "<|im_start|>user\nHello!<|im_end|>\n",
    "def f(x):\n    return x ** 2  # square\n",
]


def main(gguf, dense_dir, binary):
    d, name = os.path.split(os.path.abspath(gguf))
    ref_tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=name)
    ours = Tokenizer.from_file(os.path.join(dense_dir, "tokenizer.json"))
    same = 0
    for t in TEXTS:
        a = ref_tok(t, add_special_tokens=True)["input_ids"]
        b = ours.encode(t, add_special_tokens=True).ids
        same += a == b
        if a != b:
            print("DIFFERENT:", repr(t), a, b)
    print(f"tokenizer: {same}/{len(TEXTS)} texts give identical ids")
    model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
    ids = [ref_tok(t)["input_ids"] for t in TEXTS[:2]]
    with torch.no_grad():
        ref = [model(torch.tensor([x])).logits[0] for x in ids]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "l.safetensors")
        subprocess.run([binary, "logits", "--model", dense_dir, "--input-ids",
                        ";".join(",".join(map(str, x)) for x in ids), "--output", out],
                       check=True, capture_output=True)
        got = load_file(out)["logits"]
    err = max((got[b, : len(x)] - ref[b]).abs().max().item() for b, x in enumerate(ids))
    agree = all(bool((got[b, : len(x)].argmax(-1) == ref[b].argmax(-1)).all()) for b, x in enumerate(ids))
    print(f"logits: max abs error {err:.3g} over {sum(map(len, ids))} positions; argmax identical: {agree}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
