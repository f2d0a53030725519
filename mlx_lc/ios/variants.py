"""Tokenizer variants for the Swift golden tests, each trained offline on the same corpus.

The tiny model's own tokenizer is GPT-2 style byte-level BPE (ByteLevel pre-tokenizer with its
built-in regex). Real models the paper uses differ, so the Swift tokenizer is also checked on:
  llama3     Llama 3 layout: a Split pre-tokenizer with Llama 3's regex, ByteLevel without regex,
             and `ignore_merges` (whole words in the vocab skip the merges).
  qwen2      Qwen2 layout: an NFC normalizer and Qwen2's regex (digits one by one).
  spm        Llama 2 / Mistral layout (sentencepiece converted to BPE): a Prepend+Replace
             normalizer, no pre-tokenizer, byte fallback to <0xXX> tokens, Strip decoder.
  metaspace  newer sentencepiece conversions: a Metaspace pre-tokenizer (prepend "first").
"""

from __future__ import annotations

import json
from typing import Iterable

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")
SPM_SPECIAL = ["<unk>", "<s>", "</s>"]


def _byte_level_split(texts: list[str], vocab: int, pattern: str, specials: list[str], ignore_merges: bool,
                      nfc: bool = False):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _sentencepiece_like(texts: list[str], vocab: int, metaspace: bool):
    """Train char-level BPE on ▁-prefixed words, then add the 256 <0xXX> byte tokens as
    sentencepiece's byte fallback does, and switch to the layout being imitated."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPM_SPECIAL, show_progress=False))
    spec = json.loads(tok.to_str())
    model = spec["model"]
    for b in range(256):
        model["vocab"].setdefault(f"<0x{b:02X}>", len(model["vocab"]))
    model["byte_fallback"] = True
    model["unk_token"] = "<unk>"
    model["fuse_unk"] = True
    if metaspace:
        spec["normalizer"] = None
        spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                                 "split": False}
    else:
        spec["pre_tokenizer"] = None
    decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                 decoders.Strip(" ", 1, 0)])
    spec["decoder"] = json.loads(decoder.__getstate__())
    return Tokenizer.from_str(json.dumps(spec))


def train_variants(texts: Iterable[str], vocab: int = 512) -> dict:
    """name -> tokenizers.Tokenizer"""
    texts = list(texts)
    return {"llama3": _byte_level_split(texts, vocab, LLAMA3_PATTERN, ["<|begin_of_text|>", "<|eot_id|>"], True),
            "qwen2": _byte_level_split(texts, vocab, QWEN2_PATTERN, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                       False, nfc=True),
            "spm": _sentencepiece_like(texts, vocab, metaspace=False),
            "metaspace": _sentencepiece_like(texts, vocab, metaspace=True)}
