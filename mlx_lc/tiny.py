"""Tiny random Llama-architecture models with a locally trained byte-level BPE tokenizer.

Fully offline, loadable by `mlx_lm.load`; tests and demos use them in place of a hub model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import mlx.core as mx

from . import model_folder
from .errors import MlxLcError
from .io import atomic_dir

SPECIAL = ["<|pad|>", "<|bos|>", "<|eos|>"]

# Default tokenizer corpus: prompt scaffolding plus everyday text in the four languages we use,
# with accents, punctuation and emoji so that byte-level BPE sees them.
DEFAULT_CORPUS = """### Instruction:
### Response:
Summarize the dialogue in one sentence. Suggest the next reply in the conversation.
Translate the text into Spanish. Translate the text into French. Translate the text into German.
Rewrite the text in a professional tone. Rewrite the text in a casual tone. Paraphrase the text.
Anna: Shall we meet at the café on Friday at seven? Ben: Sure, see you there!
Anna and Ben agree to meet at the café on Friday at seven.
Ana y Ben quedan en el café el viernes a las siete. ¿Nos vemos mañana? ¡Claro que sí!
Anna et Ben se retrouvent au café vendredi à sept heures. « Très bien », dit-elle. Où est la gare ?
Anna und Ben treffen sich am Freitag um sieben Uhr im Café. Grüße aus München! Schöne Straße.
Thanks a lot 🙂 — that works for me. Let's grab lunch at noon; the park is lovely in spring.
"""


@dataclass
class TinyConfig:
    hidden: int = 64
    layers: int = 2
    vocab: int = 512
    heads: int = 4
    kv_heads: int = 2  # grouped-query attention, as in Llama 3 and Qwen2
    intermediate: int | None = None  # default: 2 * hidden... rounded as Llama does
    tie: bool = True
    seed: int = 0
    max_position: int = 2048
    rope_theta: float = 10000.0

    def validate(self, vocab: bool = True) -> None:
        """Raise on sizes no model can have, before a tokenizer is trained or a folder made
        (0 heads used to end in ZeroDivisionError, an odd head size in a RoPE error at the first step)."""
        for name in ("hidden", "layers", "heads", "kv_heads", "max_position"):
            if getattr(self, name) < 1:
                raise MlxLcError(f"{name} must be at least 1, got {getattr(self, name)}", param=name)
        if self.intermediate is not None and self.intermediate < 1:
            raise MlxLcError(f"intermediate must be at least 1, got {self.intermediate}")
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise MlxLcError(f"hidden {self.hidden} must divide by heads {self.heads}, "
                             f"heads by kv_heads {self.kv_heads}")
        if (self.hidden // self.heads) % 2:
            raise MlxLcError(f"head size hidden / heads = {self.hidden // self.heads} must be even "
                             "(RoPE rotates pairs)")
        if vocab and self.vocab < 300:
            raise MlxLcError(f"vocab must be at least 300 (256 bytes + specials + merges), got {self.vocab}",
                             param="vocab")


def train_tokenizer(texts: Iterable[str], vocab: int):
    """A byte-level BPE tokenizer (GPT-2/Llama-3 style) trained on `texts`, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    from tokenizers.processors import TemplateProcessing

    bos = tok.token_to_id("<|bos|>")
    tok.post_processor = TemplateProcessing(single="<|bos|> $A", pair="<|bos|> $A $B",
                                            special_tokens=[("<|bos|>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>",
                                   pad_token="<|pad|>")


def write_tiny_model(out: str | Path, cfg: TinyConfig | None = None, corpus: Iterable[str] | None = None) -> Path:
    """Write config.json, model.safetensors and tokenizer files for a random Llama model."""
    cfg = cfg or TinyConfig()
    cfg.validate()
    with atomic_dir(out, marker="config.json", kind="model folder") as tmp:
        tiny_model_files(tmp, cfg, corpus)
    return Path(out)


def tiny_model_files(folder: Path, cfg: TinyConfig, corpus: Iterable[str] | None = None) -> None:
    """write_tiny_model's files, into an existing `folder` (a caller's temporary one)."""
    cfg.validate()
    texts = list(corpus) if corpus is not None else DEFAULT_CORPUS.splitlines()
    tokenizer = train_tokenizer(texts, cfg.vocab)
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    model, config = build_tiny(cfg, len(tokenizer), special)
    model_folder.save_files(folder, model, tokenizer, config, {"mlx_lc_tiny.json": asdict(cfg)})


def build_tiny(cfg: TinyConfig, vocab_size: int, special: dict | None = None):
    """A randomly initialised mlx-lm Llama model for `cfg` with `vocab_size` rows -> (model, config dict)."""
    from mlx_lm.models import llama

    cfg.validate(vocab=False)  # vocab_size comes from the tokenizer, not cfg.vocab
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": cfg.hidden,
        "num_hidden_layers": cfg.layers,
        "intermediate_size": cfg.intermediate or 2 * cfg.hidden,
        "num_attention_heads": cfg.heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.hidden // cfg.heads,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "rope_theta": cfg.rope_theta,
        "max_position_embeddings": cfg.max_position,
        "tie_word_embeddings": cfg.tie,
        **(special or {}),
        "torch_dtype": "float32",
    }
    mx.random.seed(cfg.seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    # Small embeddings keep a tied head's random logits in a sane range.
    model.model.embed_tokens.weight = 0.02 * mx.random.normal(model.model.embed_tokens.weight.shape)
    mx.eval(model.parameters())
    return model, config
