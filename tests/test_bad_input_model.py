"""Hostile and malformed model folders given to every command that loads a model (generate, merge,
fold, fuse, train-lora, eval): one `Error:` line naming the problem, a non-zero exit, nothing
written, and no code from the folder run, even with "y" on stdin for a "[y/N]" prompt. Also the
context check: a prompt that cannot fit the model's context is refused before generating.
Real tiny model folders, copied and broken on disk; no mocks."""

import mlx_lc  # noqa: F401

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_lc.cli import main
from mlx_lc.model_folder import context_length

import toy_data
from conftest import pair_with_calibration
from clirun import assert_one_line_error

MARKER = "ran_folder_code"


def invoke(*args):
    # "y" lines answer a trust_remote_code prompt, as `yes | mlx-lc ...` did
    return CliRunner().invoke(main, [str(a) for a in args], input="y\n" * 20)


def edit_json(folder: Path, name: str, change):
    path = folder / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def evil_code(folder: Path, module: str) -> None:
    """A Python file that leaves a marker beside the folder if anything imports it."""
    marker = folder.parent / MARKER
    (folder / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                         "from transformers import LlamaConfig as EvilConfig\n"
                                         "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")


def unknown_to_transformers(f):
    """A model type mlx-lm loads as Llama but transformers does not know: with no tokenizer class
    of its own either, transformers has no local code to fall back on, so it asks "[y/N]"."""
    edit_json(f, "config.json", lambda c: {**c, "model_type": "xverse"})
    edit_json(f, "tokenizer_config.json", lambda c: {**c, "tokenizer_class": "EvilTokenizer"})


def auto_map_tokenizer(f):
    evil_code(f, "evil_tok")
    unknown_to_transformers(f)
    edit_json(f, "tokenizer_config.json", lambda c: {**c, "auto_map": {"AutoTokenizer": ["evil_tok.EvilTokenizer", None]}})


def auto_map_config(f):
    evil_code(f, "evil_tok")
    edit_json(f, "config.json", lambda c: {**c, "auto_map": {"AutoTokenizer": ["evil_tok.EvilTokenizer", None]}})
    edit_json(f, "tokenizer_config.json", lambda c: {k: v for k, v in c.items() if k != "tokenizer_class"})


def model_file(f):
    evil_code(f, "evil_model")
    edit_json(f, "config.json", lambda c: {**c, "model_file": "evil_model.py"})


def truncated(f):
    w = f / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])


def config_list(f):
    edit_json(f, "config.json", lambda c: [c])


def config_types(f):
    edit_json(f, "config.json", lambda c: {**c, "hidden_size": "64"})


def config_not_json(f):
    (f / "config.json").write_text('{"model_type": "llama",')


def generation_types(f):
    (f / "generation_config.json").write_text(json.dumps({"eos_token_id": "<|eos|>"}))


def chat_template(f):
    edit_json(f, "tokenizer_config.json", lambda c: {**c, "chat_template": "{% if %}{{ messages }}"})


def bin_only(f):
    (f / "model.safetensors").unlink()
    (f / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not loaded")


def no_tokenizer(f):
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (f / name).unlink(missing_ok=True)


FOLDERS = {
    "auto_map_tokenizer": (auto_map_tokenizer, "tokenizer_config.json auto_map 'AutoTokenizer' names custom code (evil_tok.py)"),
    "auto_map_config": (auto_map_config, "config.json auto_map 'AutoTokenizer' names custom code (evil_tok.py)"),
    "model_file": (model_file, "config.json 'model_file' names custom code (evil_model.py)"),
    "truncated": (truncated, "model.safetensors is truncated"),
    "config_list": (config_list, "config.json must hold a JSON object, got list"),
    "config_types": (config_types, "config.json 'hidden_size' must be a positive integer, got '64'"),
    "config_not_json": (config_not_json, "config.json is not valid JSON"),
    "generation_types": (generation_types, "generation_config.json 'eos_token_id' must be a token id"),
    "chat_template": (chat_template, "the model's chat template fails on a user message"),
    "bin_only": (bin_only, "only PyTorch pickle weights (pytorch_model.bin); mlx-lc loads safetensors only"),
    "no_tokenizer": (no_tokenizer, "no tokenizer in"),
}


@pytest.fixture(scope="module")
def fx(tmp_path_factory, tiny_path, tiny_model):
    """Two adapters and a calibration on the tiny model, data for train-lora and eval, and one
    broken copy of the tiny model folder per case (each in its own parent, for its marker)."""
    root = tmp_path_factory.mktemp("bad_model")
    model = tiny_model[0]
    a1, a2, calib = pair_with_calibration(root, model)
    data = toy_data.write(root / "sum", "summarize", 8, 2)
    rows = root / "rows.jsonl"
    rows.write_text("".join(json.dumps(toy_data.row("summarize+es", i)) + "\n" for i in range(2)))
    folders = {}
    for case, (breaks, _) in FOLDERS.items():
        folder = root / case / "model"
        shutil.copytree(tiny_path, folder)
        breaks(folder)
        folders[case] = folder
    return {"root": root, "a1": a1, "a2": a2, "cal": calib, "data": data, "rows": rows, "folders": folders}


COMMANDS = {
    "generate": lambda fx, m, out: ("generate", "-m", m, "-a", fx["a1"], "-t", "summarize", "-p", "hi", "--max-tokens", 2),
    "merge": lambda fx, m, out: ("merge", "-m", m, "-a", fx["a1"], "-a", fx["a2"], "-o", out),
    "fold": lambda fx, m, out: ("fold", "-m", m, "-a", fx["a1"], "-a", fx["a2"], "-c", fx["cal"], "-o", out),
    "fuse": lambda fx, m, out: ("fuse", "-m", m, "-a", fx["a1"], "-o", out),
    "train-lora": lambda fx, m, out: ("train-lora", "-m", m, "-d", fx["data"], "-o", out, "--iters", 1, "-q"),
    "eval": lambda fx, m, out: ("eval", "-m", m, "-d", fx["rows"], "-o", out, "--max-tokens", 2),
}


def test_config_auto_map_is_never_run(tiny_path, tmp_path):
    """config.json's AutoConfig code (many hub models carry one) is not needed to load the model:
    it loads, with no prompt, and the code does not run even with "y" on stdin."""
    folder = tmp_path / "parent" / "model"
    shutil.copytree(tiny_path, folder)
    evil_code(folder, "evil_config")
    edit_json(folder, "config.json", lambda c: {**c, "model_type": "xverse", "auto_map": {"AutoConfig": "evil_config.EvilConfig"}})
    r = invoke("generate", "-m", folder, "-p", "hi", "--max-tokens", 2)
    assert r.exit_code == 0, r.output
    assert "[y/N]" not in r.output
    assert not (folder.parent / MARKER).exists(), "code from the model folder ran"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", FOLDERS)
def test_malformed_model_folder(fx, tmp_path, case, command):
    folder = fx["folders"][case]
    out = tmp_path / "out"
    r = invoke(*COMMANDS[command](fx, folder, out))
    assert_one_line_error(r, f"model {folder}: {FOLDERS[case][1]}")
    assert not (folder.parent / MARKER).exists(), "code from the model folder ran"
    assert not out.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- context length

@pytest.fixture(scope="module")
def short_model(tmp_path_factory, tiny_path):
    """The tiny model, told it has 256 positions (Llama's RoPE does not depend on the number)."""
    folder = tmp_path_factory.mktemp("short") / "model"
    shutil.copytree(tiny_path, folder)
    edit_json(folder, "config.json", lambda c: {**c, "max_position_embeddings": 256})
    return folder


LONG = "Anna and Ben meet at the cafe on Friday. " * 40  # well over 256 tokens


def test_generate_refuses_prompt_past_context(short_model):
    r = invoke("generate", "-m", short_model, "-p", LONG, "--max-tokens", 8)
    assert_one_line_error(r, "tokens and max tokens is 8")
    assert "more than the model's context of 256" in r.output


def test_generate_counts_max_tokens_too(short_model):
    r = invoke("generate", "-m", short_model, "-p", "hi", "--max-tokens", 256)
    assert_one_line_error(r, "more than the model's context of 256")


def test_eval_refuses_row_past_context(short_model, tmp_path):
    rows = [toy_data.row("summarize+es", i) for i in range(2)]
    rows[1]["prompt"] = LONG
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = invoke("eval", "-m", short_model, "-d", data, "-o", tmp_path / "out", "--max-tokens", 4)
    assert_one_line_error(r, "the prompt of row 2 is")
    assert not (tmp_path / "out").exists()


def test_rope_scaling_stretches_context(short_model, tmp_path):
    scaled = tmp_path / "scaled"
    shutil.copytree(short_model, scaled)
    edit_json(scaled, "config.json", lambda c: {**c, "rope_scaling": {"type": "linear", "factor": 2.0}})
    r = invoke("generate", "-m", scaled, "-p", "hi", "--max-tokens", 256)  # fits 512, not 256
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("config, want", [
    ({"max_position_embeddings": 2048}, 2048),
    ({"max_position_embeddings": 2048, "rope_scaling": {"type": "linear", "factor": 2.0}}, 4096),
    # Llama 3.1: the max is already the stretched one
    ({"max_position_embeddings": 131072,
      "rope_scaling": {"factor": 8.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}}, 131072),
    # Qwen2.5 with YaRN: the max is the original one
    ({"max_position_embeddings": 32768,
      "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}}, 131072),
    ({"text_config": {"max_position_embeddings": 8192}}, 8192),
    ({}, None),
])
def test_context_length(config, want):
    assert context_length(config) == want


def test_hub_id_is_checked_after_download(tiny_path, tmp_path, monkeypatch):
    """A hub id resolves to its snapshot (here a cached one, offline), which gets the same checks."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    repo = tmp_path / "hub" / "models--someone--tiny"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_path, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    auto_map_tokenizer(snapshot)
    r = invoke("generate", "-m", "someone/tiny", "-p", "hi", "--max-tokens", 2)
    assert_one_line_error(r, "model someone/tiny: tokenizer_config.json auto_map 'AutoTokenizer' names custom code")
    assert not (snapshot.parent / MARKER).exists(), "code from the model folder ran"


def test_check_accepts_what_hub_models_carry(tiny_path, tmp_path):
    """Fields real hub folders have, which the checks must not refuse: Llama 3.1's rope_scaling, a
    stale AutoConfig auto_map (Phi-3, DeepSeek), an eos list, top_k 0, a list of chat templates,
    AddedToken dicts, a float model_max_length, a per-layer size list, a sentencepiece tokenizer only."""
    from mlx_lc.model_folder import check

    folder = tmp_path / "model"
    shutil.copytree(tiny_path, folder)
    edit_json(folder, "config.json", lambda c: {
        **c, "rope_scaling": {"factor": 8.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config"}, "eos_token_id": [2, 3], "head_dim": None,
        "text_config": {"intermediate_size": [128, 256]}})
    edit_json(folder, "tokenizer_config.json", lambda c: {
        **c, "chat_template": [{"name": "default", "template": "{{ messages }}"}], "model_max_length": 1e30,
        "bos_token": {"content": "<|bos|>", "lstrip": False}})
    (folder / "generation_config.json").write_text(json.dumps({"top_k": 0, "temperature": None, "eos_token_id": [2, 3]}))
    (folder / "tokenizer.json").rename(folder / "tokenizer.model")
    assert check(folder)["model_type"] == "llama"


def test_data_generator_refuses_message_past_context(short_model):
    from mlx_lc.data.generation import TextGenerator
    from mlx_lc.errors import MlxLcError

    gen = TextGenerator(str(short_model), max_tokens=8)
    with pytest.raises(MlxLcError, match="the prompt of message 2 of 2 is .* more than the model's context of 256"):
        gen(["hi", LONG])
    assert gen.generated == 0
