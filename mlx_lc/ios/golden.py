"""Golden files for the Swift tests in ios_shortcut/: what the Python side says the app must do.

`write_golden(out)` writes, from a tiny model made offline:
  manifest.json + the tokenizer files it names   (a chat template puts special tokens in prompts)
  variants/<name>/tokenizer.json                 (Llama 3, sentencepiece and Metaspace layouts)
  prompts.json    every composition's prompt and token ids for sample conversations
  tokens.json     per tokenizer: pre-tokenizer pieces and ids for tricky texts, decodes of id runs
  sampler.json    SplitMix64 draws, and the tokens the reference sampler picks from fixed logits
Everything is deterministic, so `tests/test_ios_golden.py` regenerates into a temp dir and fails
when the committed files differ.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

from .. import manifest as manifest_mod
from .. import tasks
from ..io import atomic_dir
from ..model_folder import NO_REMOTE_CODE, check
from .sampler import SamplingConfig, SplitMix64, sample_sequence
from .variants import train_variants

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "ios_shortcut/Tests/MLXLCCoreTests/Golden"

# Text the tokenizers are trained on: the tiny model's corpus plus the punctuation people type.
CORPUS_EXTRA = """Marie : « On se voit demain ? » Jonas : „Ja, gern!“ — bis morgen…
“Curly quotes” and ‘single ones’ — it’s fine. Don’t worry; we’re late, aren’t we?
Ça va ? Très bien, merci. L’été à Zürich ist schön. Größe, Maß, Übermorgen, Äpfel, Öl.
Let's meet at 10:30, room 4B. It costs 1,250 € or 3.50 $. Tabs\there and CRLF\r\nlines.
🙂 👍 😂 ❤️ 🎉 👩‍💻 🇩🇪 Emoji everywhere! 😊
"""

CONVERSATIONS = [
    "Anna: Shall we meet at the café on Friday at seven?\nBen: Sure, see you there! 🙂",
    "  \tMarie : « On se voit demain ? »\nJonas: „Ja, gern!“ — bis morgen…\u00a0\n\n",
    "\x1cTom: It's 5 o'clock; we're late.\r\nEva: “No worries” 👩‍💻\u3000",
]

TRICKY_TEXTS = [
    "", "a", " leading space", "  two leading spaces", "trailing space ", "tabs\tand\ttabs",
    "café naïve façade Größe Straße Übermorgen", "e\u0301 (combining) vs é (composed)",
    "«guillemets» « espacés » ‹simple›", "„German quotes“ and ‚single‘ ones",
    "“curly quotes” and ‘apostrophes’ it’s", "line one\nline two\n\nline four\r\nwindows\n",
    "emoji 🙂 👩‍💻 🇩🇪 ❤️ done", "🙂🙂🙂", "It's we'll THEY'RE I'M he'd x'ſ it'S",
    "numbers 1234567 3.14 1,000 10:30", "special <|eos|> inside<|bos|>and <|pad|>",
    "日本語のテキスト", "\u00a0nbsp\u2003em space\u3000ideographic", "   ", "\n\n\n", "a  b   c\t\td",
    "ÀÉÎÕÜ àéîõü ñ ç ß ø å", "Ça va ? Très bien, merci !", "aaaaaaaaaaaaaaaaaaaaaaaa",
    # Texts where the split regex's alternatives disagree, so a wrong scanner shows.
    "x'ſt 'Sup WE'REn't", "end.\r\rnext\r", "a \r\n  \n b", "1234567890 ١٢٣٤ Ⅻ ½",
    "\u0085next\u000bline\u001cx", "word_with_underscores __init__", "tab\t\tx \t y  ",
]
SPECIAL_TEXTS = {"llama3": "<|begin_of_text|>Hi<|eot_id|> again", "spm": "<s>Hi</s> again <s> x",
                 "metaspace": "<s>Hi</s> again <s> x", "qwen2": "<|im_start|>user\nHi 12<|im_end|>\n"}

# A Llama-3-like chat template over the tiny tokenizer's specials, so prompts carry special tokens.
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n"
                 "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")

CONTEXT = 256
VARIANT_ORDER = ["llama3", "spm", "metaspace", "qwen2"]  # appended keeps earlier variants' seeds
SAMPLER_CONFIGS = [SamplingConfig(0.0, 1.0, 0), SamplingConfig(0.7, 1.0, 0), SamplingConfig(0.7, 1.0, 1),
                   SamplingConfig(1.0, 1.0, 42), SamplingConfig(1.0, 0.9, 42), SamplingConfig(1.5, 0.5, 7),
                   SamplingConfig(0.3, 0.95, 123456789), SamplingConfig(2.0, 0.0, 3),
                   SamplingConfig(1.0, 1.0, 2**64 - 1)]


def composition_name(task: tasks.Composition) -> str:
    return f"{'sum' if task.primary.name == 'summarize' else 'reply'}_{task.secondary.name}"


def default_io(cfg: dict, context: int) -> dict:
    """The io section as the Core ML exporter writes it (mlx_lc/export/coreml.py `io_description`,
    branch coreml): Apple's Llama export names, which swift-transformers also uses."""
    cache = [cfg["num_hidden_layers"], 1, cfg["num_key_value_heads"], context, cfg["head_dim"]]
    return {"inputs": {"inputIds": {"shape": [1, "T"], "dtype": "int32"},
                       "causalMask": {"shape": [1, 1, "T", "P+T"], "dtype": "float16"}},
            "outputs": {"logits": {"shape": [1, 1, cfg["vocab_size"]], "dtype": "float16"}},  # last position only
            "states": {"keyCache": {"shape": cache, "dtype": "float16"},
                       "valueCache": {"shape": cache, "dtype": "float16"}},
            "dims": {"T": {"prefill": [1, context], "decode": [1, 1]}, "P": [0, context - 1], "P+T": [1, context]}}


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def _encode(tok, text: str, special: bool) -> list[int]:
    return tok.encode(text, add_special_tokens=special).ids


def _decode_runs(tok, texts: list[str], seed: int) -> list[dict]:
    """Id runs to decode: each text's ids, and random runs that split multi-byte characters
    and hold special tokens (skipped when decoding)."""
    runs = [_encode(tok, t, False) for t in texts if t]
    rng, n = SplitMix64(seed), tok.get_vocab_size()
    runs += [[rng.next_u64() % n for _ in range(16)] for _ in range(8)]
    return [{"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)} for ids in runs]


def _tokens_section(tok, texts: list[str], seed: int) -> dict:
    pre, norm = tok.pre_tokenizer, tok.normalizer
    encode = []
    for text in texts:
        case = {"text": text, "ids": _encode(tok, text, False)}
        if pre is not None and "<|" not in text and "<s>" not in text:
            case["pieces"] = [p for p, _ in pre.pre_tokenize_str(norm.normalize_str(text) if norm else text)]
        encode.append(case)
    return {"encode": encode, "decode": _decode_runs(tok, texts, seed)}


def _logits(steps: int, vocab: int, seed: int) -> list[list[float]]:
    """Gaussian-ish logits rounded to fp16 (what the model emits), with a tie for the maximum."""
    import numpy as np

    rng = SplitMix64(seed)
    rows = []
    for s in range(steps):
        row = []
        for _ in range(vocab):
            u1, u2 = rng.next_double() or 1e-12, rng.next_double()
            row.append(3.0 * math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2))
        if s == 1:
            top = max(row)
            row[5] = row[9] = top
        rows.append([float(v) for v in np.asarray(row, dtype=np.float16)])
    return rows


def _sampler_section() -> dict:
    draws = {}
    for seed in (0, 42, 2**63):
        # As strings: JSON numbers stop being exact at 2**53, and Foundation's JSON parser on
        # Linux rounds some doubles off by an ulp, so doubles travel as hex floats.
        rng = SplitMix64(seed)
        draws[str(seed)] = {"u64": [str(rng.next_u64()) for _ in range(4)],
                            "double": [rng.next_double().hex() for _ in range(4)]}
    logits = _logits(steps=12, vocab=96, seed=2025)
    cases = [{"temperature": c.temperature, "top_p": c.top_p, "seed": str(c.seed),
              "tokens": sample_sequence(logits, c)} for c in SAMPLER_CONFIGS]
    return {"prng": draws, "logits": logits, "cases": cases}


TINY = dict(hidden=32, layers=2, vocab=512, heads=4, kv_heads=2)
VERSIONS_FILE = "versions.json"  # the tokenizers/transformers that trained the tokenizer files


def _train(work: Path) -> tuple[Path, dict[str, str]]:
    """Fresh tokenizer files: the tiny model's (with a chat template) and the variants'."""
    from transformers import AutoTokenizer

    from ..tiny import DEFAULT_CORPUS, TinyConfig, write_tiny_model

    corpus = DEFAULT_CORPUS.splitlines() + CORPUS_EXTRA.splitlines()
    model_dir = write_tiny_model(work / "tiny", TinyConfig(**TINY), corpus)
    tok = AutoTokenizer.from_pretrained(str(model_dir), **NO_REMOTE_CODE)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(str(work / "tok"))
    variants = {name: vtok.to_str(pretty=True) + "\n" for name, vtok in train_variants(corpus, TINY["vocab"]).items()}
    return work / "tok", variants


def _reuse(src: Path, work: Path) -> tuple[Path, dict[str, str]]:
    """The tokenizer files of an earlier golden folder, to regenerate everything derived from them."""
    files = json.loads((src / "manifest.json").read_text())["tokenizer"]["files"]
    (work / "tok").mkdir(parents=True)
    for name in files:
        shutil.copy(src / name, work / "tok" / name)
    variants = {p.parent.name: p.read_text() for p in sorted((src / "variants").glob("*/tokenizer.json"))}
    return work / "tok", variants


def _config(tok) -> dict:
    """What the manifest needs of the tiny model's config.json (write_tiny_model writes these values)."""
    return {"model_type": "llama", "vocab_size": len(tok), "hidden_size": TINY["hidden"],
            "num_hidden_layers": TINY["layers"], "num_key_value_heads": TINY["kv_heads"],
            "head_dim": TINY["hidden"] // TINY["heads"]}


def _manifest(tok, files: list[str], config: dict) -> dict:
    comps = {composition_name(c): c.name for c in tasks.COMPOSITIONS.values()}
    # Function names as the exporter writes them.
    functions = {name: {"prefill": f"{name}_prefill", "decode": f"{name}_decode"} for name in comps}
    model = {"architecture": config["model_type"], "vocab_size": config["vocab_size"],
             "hidden_size": config["hidden_size"], "num_layers": config["num_hidden_layers"],
             "num_kv_heads": config["num_key_value_heads"], "head_dim": config["head_dim"],
             "context_length": CONTEXT, "quantization": "none"}
    return manifest_mod.build(tok, comps, model, default_io(config, CONTEXT), functions, "Model.mlpackage",
                              files, max_new_tokens=64)


def _prompts_section(tok, manifest: dict) -> dict:
    """The prompt Python renders (tasks.format_prompt) and the ids mlx-lm feeds the model:
    a BOS is added unless the prompt already starts with it."""
    cases = []
    for comp in manifest["compositions"]:
        for i, text in enumerate(CONVERSATIONS):
            prompt = tasks.format_prompt(tok, tasks.get(comp["task"]), text)
            special = tok.bos_token is None or not prompt.startswith(tok.bos_token)
            cases.append({"composition": comp["name"], "conversation": i, "prompt": prompt,
                          "ids": tok.encode(prompt, add_special_tokens=special)})
    # Without a chat template (base and tiny models) the prompt has no BOS, so one is added.
    plain = []
    for i, text in enumerate(CONVERSATIONS):
        prompt = tasks.wrap_message(SimpleNamespace(chat_template=None), tasks.prompt_text(tasks.get("reply+fr"), text))
        plain.append({"prompt": prompt, "ids": tok.encode(prompt, add_special_tokens=not prompt.startswith(tok.bos_token))})
    return {"conversations": CONVERSATIONS, "cases": cases, "plain": plain}


def stack_versions() -> dict:
    import tokenizers
    import transformers

    return {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__}


def write_golden(out: str | Path = DEFAULT_OUT, reuse_tokenizers: str | Path | None = None) -> Path:
    """Write the golden folder. `reuse_tokenizers`: take the tokenizer files from that golden folder
    instead of training them (training output depends on the `tokenizers` version)."""
    from mlx_lm.tokenizer_utils import TokenizerWrapper
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    out = Path(out)
    # The tokenizer training's scratch files live inside the output's own temporary folder:
    # a killed run leaves nothing in the system's temporary folder.
    with atomic_dir(out, marker=VERSIONS_FILE, kind="iOS golden set") as tmp:
        td = tmp / ".scratch"
        td.mkdir()
        if reuse_tokenizers is None:
            tok_dir, variants = _train(Path(td))
            versions = stack_versions()
        else:
            tok_dir, variants = _reuse(Path(reuse_tokenizers), Path(td))
            versions = json.loads((Path(reuse_tokenizers) / VERSIONS_FILE).read_text())
        # manifest.build reads what mlx-lm's TokenizerWrapper offers (eos_token_ids), as mlx_lc.load returns it.
        check(tok_dir, str(reuse_tokenizers or tok_dir), weights=False)  # a reused folder is the user's
        tok = TokenizerWrapper(AutoTokenizer.from_pretrained(str(tok_dir), **NO_REMOTE_CODE))
        files = sorted(p.name for p in tok_dir.iterdir() if p.is_file())
        for name in files:
            shutil.copy(tok_dir / name, tmp / name)
        manifest = _manifest(tok, files, _config(tok))
        manifest_mod.write(manifest, tmp / "manifest.json")
        _dump(tmp / "prompts.json", _prompts_section(tok, manifest))
        tokens = {"main": _tokens_section(tok._tokenizer._tokenizer, TRICKY_TEXTS, seed=1)}
        for i, (name, spec) in enumerate(sorted(variants.items(), key=lambda kv: VARIANT_ORDER.index(kv[0]))):
            (tmp / "variants" / name).mkdir(parents=True)
            (tmp / "variants" / name / "tokenizer.json").write_text(spec)
            tokens[name] = _tokens_section(Tokenizer.from_str(spec), TRICKY_TEXTS + [SPECIAL_TEXTS[name]], seed=2 + i)
        _dump(tmp / "tokens.json", tokens)
        _dump(tmp / "sampler.json", _sampler_section())
        _dump(tmp / VERSIONS_FILE, versions)
        (tmp / "README.md").write_text(
            "Generated by `python scripts/ios_golden.py` (mlx_lc/ios/golden.py). Do not edit by hand;\n"
            "tests/test_ios_golden.py fails when these files are stale.\n")
        shutil.rmtree(td)
    return out
