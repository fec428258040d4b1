#!/usr/bin/env python3
# LLMasOS - the Gemma 3 270M reference for tests/test-gemma3.c, computed by
# a peer implementation: Hugging Face transformers loading the same GGUF
# (it dequantizes every tensor to float32 and undoes llama.cpp's "+1" on the
# norm weights, which its Gemma3RMSNorm adds back), run on the CPU in
# float32 with eager attention.
#
# Writes tests/data/gemma3-reference.json: for each prompt the ids HF's
# tokenizer gives (built from the GGUF's vocabulary), 40 greedy tokens with
# the margin between the best and second-best logit at each step, and the
# last prompt position's top-10 logits, sum and L2 norm (for the prompt
# longer than the sliding window, also those logits without the window);
# plus the ids of a few strings that stress the tokenizer.
#
#   python3 -m venv /tmp/venv
#   /tmp/venv/bin/pip install torch transformers gguf sentencepiece accelerate
#   /tmp/venv/bin/python tests/make-gemma3-reference.py [MODEL.gguf]
#
# The model defaults to $LLMASOS_DEFAULT_MODEL.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import json
import math
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

N_NEW = 40
TOP_K = 10

# Gemma's chat template (Google's tokenizer_config.json) for one user turn;
# the tokenizer adds <bos>. The GGUF carries no tokenizer.chat_template.
CHAT = "<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n"


def long_prompt():
    """More than the 512 positions of a local layer's window, so that the
    sliding window changes the result (checked below)."""
    names = ["Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Grete"]
    days = [f"Day {i}: the traveller walked {3 * i + i % 4} miles and wrote "
            f"a letter to {names[i % 7]}." for i in range(1, 30)]
    return " ".join(days) + " Day 30: the traveller walked"


PROMPTS = [
    ("capital", "The capital of France is", False),
    ("story", "Once upon a time, in a small village by the sea,", False),
    ("code", 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
     False),
    ("chat-mountain", CHAT.format("What is the tallest mountain in the world?"),
     False),
    ("chat-haiku", CHAT.format("Write a haiku about autumn leaves."), False),
    ("long", long_prompt(), True),
]

TOKENIZER_STRINGS = [
    "Hello world",
    " leading space",
    "  two  spaces,   three,    four",
    "tabs\tand\t\ttabs",
    "line\nbreaks\n\n\nand\r\nCRLF",
    "<start_of_turn>user\nHi<end_of_turn>\n",
    "<div class=\"x\"><b>bold</b></div>",
    "digits 1234567890 and 3.14159",
    "naïve café, Ærøskøbing, straße",
    "日本語のテキストと中文",
    "emoji 🙂👍🏽 and rare 𝔘𝔫𝔦 \u2028 chars",
    "    indented code:\n        return x  # comment",
]


def default_model():
    path = os.environ.get("LLMASOS_DEFAULT_MODEL")
    if not path:
        sys.exit("give the GGUF path or set LLMASOS_DEFAULT_MODEL")
    return path


def top_k(logits, k):
    vals, ids = torch.topk(logits, k)
    return [[int(i), float(v)] for i, v in zip(ids, vals)]


def margin(logits):
    vals, _ = torch.topk(logits, 2)
    return float(vals[0] - vals[1])


@torch.no_grad()
def greedy(model, ids):
    """N_NEW tokens by argmax, end tokens included (nothing stops early),
    with the KV cache as generate() uses it."""
    out = model(input_ids=torch.tensor([ids]), use_cache=True)
    last = out.logits[0, -1].float()
    first = last.clone()
    past = out.past_key_values
    new, margins = [], []
    for _ in range(N_NEW):
        nxt = int(torch.argmax(last))
        new.append(nxt)
        margins.append(round(margin(last), 4))
        out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past,
                    use_cache=True)
        past = out.past_key_values
        last = out.logits[0, -1].float()
    return first, new, margins


@torch.no_grad()
def check_without_cache(model, ids, new):
    """The cached loop against a full recomputation of the last step."""
    out = model(input_ids=torch.tensor([ids + new[:-1]]), use_cache=False)
    assert int(torch.argmax(out.logits[0, -1])) == new[-1], \
        "greedy with and without the KV cache disagree"


@torch.no_grad()
def without_window(model, ids, top):
    """The last logits when the local layers see the whole prompt (their
    RoPE base unchanged): the largest change of any logit, which shows the
    prompt is long enough to test the window, and the logits of the ids of
    @top."""
    base = model(input_ids=torch.tensor([ids])).logits[0, -1]
    saved = model.config.sliding_window
    model.config.sliding_window = 1 << 20
    try:
        wide = model(input_ids=torch.tensor([ids])).logits[0, -1]
    finally:
        model.config.sliding_window = saved
    return (float((base - wide).abs().max()),
            [[i, float(wide[i])] for i, _ in top])


def main():
    path = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           default_model())
    folder, name = os.path.split(path)
    out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "data", "gemma3-reference.json")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32,
        attn_implementation="eager")
    model.eval()
    cfg = model.config

    cases = []
    for label, text, check_window in PROMPTS:
        ids = tok(text)["input_ids"]
        first, new, margins = greedy(model, ids)
        check_without_cache(model, ids, new)
        case = {
            "name": label,
            "prompt": text,
            "prompt_ids": ids,
            "greedy_ids": new,
            "greedy_text": tok.decode(new),
            "greedy_margins": margins,
            "last_logits_top10": top_k(first, TOP_K),
            "last_logits_sum": float(first.double().sum()),
            "last_logits_l2": float(first.double().norm()),
        }
        if check_window:
            effect, wide = without_window(model, ids,
                                          case["last_logits_top10"])
            case["window_effect_max_abs"] = effect
            case["no_window_logits"] = wide
        cases.append(case)
        print(f"{label}: {len(ids)} prompt tokens, min margin "
              f"{min(margins):.3f}: {tok.decode(new)!r}", file=sys.stderr)

    ref = {
        "model": name,
        "generator": (f"transformers {transformers.__version__}, torch "
                      f"{torch.__version__}, float32, eager attention, CPU"),
        "config": {
            "sliding_window": cfg.sliding_window,
            "layer_types": cfg.layer_types,
            "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
            "rope": {k: v["rope_theta"] for k, v in
                     cfg.rope_parameters.items()},
            "final_logit_softcapping": cfg.final_logit_softcapping,
            "attn_logit_softcapping": cfg.attn_logit_softcapping,
        },
        "new_tokens": N_NEW,
        "cases": cases,
        "tokenizer": [{"text": s, "ids": tok(s, add_special_tokens=False)
                       ["input_ids"]} for s in TOKENIZER_STRINGS],
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
