#!/usr/bin/env python3
"""Peer reference for the Gemma 3 tokenizer: a few hundred strings (mixed
scripts, emoji, whitespace runs, chat markers) encoded by Hugging Face
transformers' tokenizer loaded from the same GGUF, written to
tests/data/gemma3-tokenize.json. Usage: make-gemma3-tokenize-reference.py GGUF"""
import json, os, random, sys
from transformers import AutoTokenizer

gguf = sys.argv[1]
tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
rng = random.Random(20261125)
pieces = ["Hello", "world", "Paris", "naïve", "café", "Straße", "日本語", "中文", "한국어",
          "Русский", "العربية", "हिन्दी", "ελληνικά", "😀", "🚀", "👩‍💻", "🇫🇷", "123", "3.14",
          "<start_of_turn>", "<end_of_turn>", "user", "model", "\n", "\n\n", "  ", "    ", "\t",
          " ", "...", "?!", "(x)", "http://a.b/c", "don't", "C++", "e=mc²"]
cases = ["", " ", "  leading", "trailing  ", "a\n\nb", "\t\ttabs", "<start_of_turn>user\nHi<end_of_turn>\n"]
while len(cases) < 300:
    n = rng.randint(1, 12)
    s = ""
    for _ in range(n):
        s += rng.choice(pieces) + rng.choice(["", " ", " ", "\n", "  "])
    cases.append(s)
out = [{"text": s, "ids": tok.encode(s, add_special_tokens=False)} for s in cases]
json.dump({"generator": "transformers AutoTokenizer from the GGUF, add_special_tokens=False",
           "cases": out}, open(os.path.join(os.path.dirname(__file__), "data", "gemma3-tokenize.json"), "w"),
          ensure_ascii=False, indent=0)
print(len(out), "cases")
