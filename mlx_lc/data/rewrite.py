"""Messages that turn a single-task target into a compositional one, and output cleaning.

The paper translated targets with OpusMT (Helsinki-NLP/opus-mt-en-{es,fr,de}, Marian
encoder-decoder models) and rewrote tone with RedPajama-INCITE-Base-3B (the llm-toys
paraphrase/tone LoRA). mlx-lm runs decoder-only LMs, not Marian, so here both the translator and
the rewriter are mlx-lm models prompted per target: any instruct model (format "instruct"), or a
base model fine-tuned on the llm-toys prompt (format "llm-toys", the prompt the authors used).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MlxLcError
from ..tasks import LANGUAGES, TONES

FORMATS = ("instruct", "llm-toys")

_INSTRUCT_TRANS = ("Translate the following English text into {language}. Reply with the {language} "
                   "translation only, without notes, explanations or quotation marks.\n\nText: {text}")
_INSTRUCT_TONE = ("Rewrite the following text in a {tone} tone. Keep its meaning, names and facts, and keep "
                  "it in English. Reply with the rewritten text only.\n\nText: {text}")
_INSTRUCT_PARA = ("Paraphrase the following text: say the same thing in different words, keeping its "
                  "meaning, names and facts, in English. Reply with the paraphrase only.\n\nText: {text}")
_TOYS = "### Instruction:\nChange the tone of the following Input sentence to {tone}.\n\n### Input:\n{text}\n\n### Response:\n"
TOYS_STOP = "### END"


@dataclass(frozen=True)
class Rewrite:
    """One secondary task applied to a text: a language code (es, fr, de) or a tone."""

    secondary: str
    fmt: str = "instruct"

    def __post_init__(self):
        if self.secondary not in LANGUAGES and self.secondary not in TONES:
            raise MlxLcError(f"unknown secondary task {self.secondary!r}")
        if self.fmt not in FORMATS:
            raise MlxLcError(f"unknown prompt format {self.fmt!r}; choose from {', '.join(FORMATS)}")
        if self.fmt == "llm-toys" and self.secondary in LANGUAGES:
            raise MlxLcError("the llm-toys format is for tone rewriting; translate with an instruct model")

    @property
    def family(self) -> str:
        return "trans" if self.secondary in LANGUAGES else "tone"

    def message(self, text: str) -> str:
        text = text.strip()
        if self.fmt == "llm-toys":
            return _TOYS.format(tone=self.secondary, text=text)
        if self.secondary in LANGUAGES:
            return _INSTRUCT_TRANS.format(language=LANGUAGES[self.secondary], text=text)
        if self.secondary == "paraphrase":
            return _INSTRUCT_PARA.format(text=text)
        return _INSTRUCT_TONE.format(tone=self.secondary, text=text)


_LABEL = re.compile(r"^\s*(?:\*\*)?(?:here is|here's)?\s*(?:the\s+)?(?:translation|translated text|rewritten text|"
                    r"rewrite|rewritten|paraphrase|paraphrased text|response|output|answer|text|spanish|french|"
                    r"german|español|français|deutsch)(?:\s*\([^)]*\))?\s*(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)
_QUOTES = [('"', '"'), ("“", "”"), ("«", "»"), ("„", "“"), ("'", "'")]


def clean(output: str | None, source: str) -> str:
    """The usable part of a model's rewrite of `source`: "" when nothing usable is left."""
    if not output:
        return ""
    text = output.replace("\r\n", "\n")
    for marker in (TOYS_STOP, "\n### ", "<|im_end|>", "<|eot_id|>", "</s>"):
        i = text.find(marker)
        if i >= 0:
            text = text[:i]
    text = text.strip()
    if "\n\n" not in source.strip() and "\n\n" in text:
        text = text.split("\n\n", 1)[0]  # a note or explanation after the answer
    text = _LABEL.sub("", text, count=1).strip()
    for a, b in _QUOTES:  # a whole answer wrapped in quotes (but not a quote inside it)
        inner = text[len(a):-len(b)] if len(text) >= len(a) + len(b) else None
        if inner is not None and text.startswith(a) and text.endswith(b) and a not in inner and b not in inner:
            text = inner.strip()
            break
    if "\n" not in source.strip():
        text = " ".join(text.split())
    return text
