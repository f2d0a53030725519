"""`mlx-lc export coreml` on tiny models: the saved package's spec, its numbers against MLX (through
a numpy interpreter of the saved milproto, since Core ML only runs on Apple OSes), package sizes,
and the manifest the iOS app reads.

Tolerance for float16 logits: the package stores weights and every intermediate in float16
(unit roundoff u = 2^-11 = 4.9e-4). Each op rounds its output once, and a logit sits behind about
a dozen rounded ops per layer; errors of that many roundings stay well under 20u = 1e-2 of the
logit scale, which is the bound asserted (relative to max |logit|; measured: ~5e-4, the same as
MLX itself shows when run in float16 on these models).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlx_lc  # noqa: F401  (BLAS before mlx)
import numpy as np
import pytest
from click.testing import CliRunner

from export_fixtures import write_adapter, write_calibration, write_model
from mlx_lc import manifest as manifest_io
from mlx_lc import tasks
from mlx_lc.cli import main
from mlx_lc.errors import MlxLcError
from mlx_lc.export import ExportConfig, export
from mlx_lc.export import quantize as quant
from mlx_lc.export.compositions import parse
from mlx_lc.export.graph import TensorStore, rope_inv_freq, spec_from_config

try:  # quietly: on Linux coremltools logs that it cannot predict
    from mlx_lc.export.coreml import import_coremltools
    ct = import_coremltools()
except MlxLcError:
    pytest.skip("coremltools is not installed (pip install 'mlx-lc[coreml]')", allow_module_level=True)

CONTEXT = 64
FP16_REL_TOL = 1e-2
WEIGHTS = ("Data", "com.apple.CoreML", "weights", "weight.bin")


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    m = write_model(root / "llama")
    a = {n: write_adapter(root / n, m, seed=s) for n, s in (("summarize", 1), ("es", 3), ("fr", 4))}
    c_es = write_calibration(root / "c_es", [a["summarize"], a["es"]], "lc", "scale")
    c_fr = write_calibration(root / "c_fr", [a["summarize"], a["fr"]], "lc++")
    es = f"sum_es:summarize+es={a['summarize']},{a['es']},{c_es}"
    fr = f"summarize+fr={a['summarize']},{a['fr']},{c_fr}"

    def run(name, comps, q="none", verify=False, model=m):
        return export(ExportConfig(model=str(model), out=str(root / name),
                                   compositions=[parse(c) for c in comps], quantize=q, context=CONTEXT,
                                   verify=verify), progress=False)

    return {"root": root, "model": m, "adapters": a, "es": es, "fr": fr,
            "multi": run("multi", [es, fr], verify=True), "single_es": run("single_es", [es]),
            "single_fr": run("single_fr", [fr]), "int4": run("int4", [es], q="int4", verify=True)}


def pkg(world, name) -> Path:
    return world["root"] / name / "Model.mlpackage"


# ---------------------------------------------------------------- the package's spec

def test_spec_has_prefill_and_decode_per_composition_with_state(world):
    spec = ct.utils.load_spec(str(pkg(world, "multi")))
    assert spec.specificationVersion >= 9  # iOS 18: states and multifunction
    fns = {f.name: f for f in spec.description.functions}
    # "summarize+fr" becomes the identifier summarize_fr in function names
    assert set(fns) == {"sum_es_prefill", "sum_es_decode", "summarize_fr_prefill", "summarize_fr_decode"}
    assert spec.description.defaultFunctionName == "sum_es_prefill"
    cache = [2, 1, 2, CONTEXT, 16]  # layers, batch, kv heads, context, head dim
    for name, f in fns.items():
        inputs = {i.name: i.type.multiArrayType for i in f.input}
        assert set(inputs) == {"inputIds", "causalMask"}
        assert inputs["inputIds"].dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32
        assert inputs["causalMask"].dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT16
        ids = [(r.lowerBound, r.upperBound) for r in inputs["inputIds"].shapeRange.sizeRanges]
        mask = [(r.lowerBound, r.upperBound) for r in inputs["causalMask"].shapeRange.sizeRanges]
        if name.endswith("_prefill"):
            assert ids == [(1, 1), (1, CONTEXT)]
            assert mask == [(1, 1), (1, 1), (1, CONTEXT), (1, CONTEXT)]
        else:
            assert list(inputs["inputIds"].shape) == [1, 1] and ids in ([], [(1, 1), (1, 1)])
            assert mask == [(1, 1), (1, 1), (1, 1), (1, CONTEXT)]
        assert [o.name for o in f.output] == ["logits"]
        states = {s.name: s.type.stateType.arrayType for s in f.state}
        assert set(states) == {"keyCache", "valueCache"}
        for s in states.values():
            assert list(s.shape) == cache and s.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT16
    meta = spec.description.metadata.userDefined
    assert meta["co.huggingface.exporters.task"] == "text-generation"
    assert meta["co.huggingface.exporters.architecture"] == "LlamaForCausalLM"
    assert json.loads(meta["co.mlx-lc.compositions"])["summarize+fr"]["decode"] == "summarize_fr_decode"


def test_base_weights_are_stored_once_for_all_functions(world):
    rep = world["multi"]
    blob = pkg(world, "multi").joinpath(*WEIGHTS).stat().st_size
    base_fp16 = 2 * rep["base_params"]
    # Four functions read the same weights: without sharing the blob would hold them four times.
    assert base_fp16 + rep["shared_lowrank_bytes"] <= blob < 1.1 * (base_fp16 + rep["shared_lowrank_bytes"])


def test_multi_composition_package_is_smaller_than_one_package_each(world):
    multi, es, fr = (dir_bytes(pkg(world, n)) for n in ("multi", "single_es", "single_fr"))
    assert multi < es + fr
    # The second composition adds its graph and its own factors, never a second copy of the base.
    assert multi - es < 0.75 * fr
    blobs = {n: pkg(world, n).joinpath(*WEIGHTS).stat().st_size for n in ("multi", "single_es", "single_fr")}
    assert blobs["multi"] - blobs["single_es"] < blobs["single_fr"] - 2 * world["multi"]["base_params"]


# ---------------------------------------------------------------- numbers against MLX

def test_fp16_package_matches_mlx_prefill_and_16_decode_steps(world):
    for name, v in world["multi"]["verify"].items():
        assert v["finite"], name
        assert v["decode_steps"] >= 16 and v["greedy_total"] == v["decode_steps"] + 1
        assert v["max_rel_err"] < FP16_REL_TOL, (name, v["max_abs_err"], v["max_abs_logit"])
        assert v["greedy_agree"] == v["greedy_total"], (v["mlx_tokens"], v["package_tokens"])
        assert len(set(v["mlx_tokens"])) > 1 or v["max_abs_logit"] > 1  # a real, non-degenerate run


def test_int4_package_equals_mlx_with_the_same_dequantized_weights(world):
    """The verdict is the exporter's error: MLX holds exactly the dequantized weights and the package
    agrees to float16 precision; int4's own error against the float model is reported beside it."""
    v = world["int4"]["verify"]["sum_es"]
    assert v["passed"] and v["finite"] and v["max_rel_err"] < FP16_REL_TOL
    assert v["greedy_agree"] == v["greedy_total"], (v["mlx_tokens"], v["package_tokens"])
    q = v["quantization"]  # information only: bounded well below garbage, and larger than the exporter's
    assert v["max_rel_err"] < q["max_rel_err"] < 0.25
    assert "quantization" not in world["multi"]["verify"]["sum_es"]  # float16: nothing to separate
    assert world["int4"]["bytes_per_param"] < world["single_es"]["bytes_per_param"]


def test_prefill_returns_the_last_positions_logits_only(world):
    """Prefill's logits are (1, 1, V): those after its last token, the same as prefilling all but
    the last token and decoding it."""
    from mlx_lc.export.interpret import Interpreter
    from mlx_lc.export.verify import causal_mask

    interp = Interpreter(pkg(world, "single_es"))
    tokens = [5, 17, 42, 8, 99, 3]
    state = interp.make_state("sum_es_prefill")
    whole = interp.run("sum_es_prefill", {"inputIds": np.array([tokens], np.int32),
                                          "causalMask": causal_mask(len(tokens), 0)}, state)["logits"]
    state = interp.make_state("sum_es_prefill")
    interp.run("sum_es_prefill", {"inputIds": np.array([tokens[:-1]], np.int32),
                                  "causalMask": causal_mask(len(tokens) - 1, 0)}, state)
    step = interp.run("sum_es_decode", {"inputIds": np.array([tokens[-1:]], np.int32),
                                        "causalMask": causal_mask(1, len(tokens) - 1)}, state)["logits"]
    vocab = manifest_io.read(world["root"] / "single_es" / "manifest.json")["model"]["vocab_size"]
    assert whole.shape == step.shape == (1, 1, vocab)
    scale = float(np.abs(step).max())
    assert np.abs(whole.astype(np.float32) - step.astype(np.float32)).max() < FP16_REL_TOL * scale


def test_qwen2_untied_biased_llama3_rope_scaling_matches_mlx(tmp_path):
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32}
    m = write_model(tmp_path / "qwen", arch="qwen2", tie=False, rope_scaling=rope, seed=5)
    adapter = write_adapter(tmp_path / "folded", m, seed=6)  # one adapter: exported folded
    rep = export(ExportConfig(model=str(m), out=str(tmp_path / "q"), quantize="none",
                              compositions=[parse(f"reply_fr:reply+fr={adapter}")], context=CONTEXT, verify=True),
                 progress=False)
    assert rep["compositions"]["reply_fr"]["kind"] == "folded"
    v = rep["verify"]["reply_fr"]
    assert v["max_rel_err"] < FP16_REL_TOL and v["greedy_agree"] == v["greedy_total"] == 17


def test_rope_frequencies_match_mlx():
    from mlx_lm.models.rope_utils import initialize_rope

    for scaling in (None, {"type": "linear", "factor": 4.0},
                    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 32}):
        cfg = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "intermediate_size": 8,
               "num_attention_heads": 4, "vocab_size": 10, "rope_theta": 500000.0, "rope_scaling": scaling}
        spec = spec_from_config(cfg)
        rope = initialize_rope(16, 500000.0, False, scaling, 256)
        ours = rope_inv_freq(spec)
        if hasattr(rope, "_freqs"):  # llama3: mlx stores periods
            np.testing.assert_allclose(ours, 1 / np.array(rope._freqs), rtol=1e-5)
        else:
            np.testing.assert_allclose(ours, rope.scale * rope.base ** (-np.arange(0, 16, 2) / 16), rtol=1e-6)


def test_quantization_matches_coremltools():
    from coremltools.optimize._utils import compute_qparams

    w = np.random.default_rng(0).normal(size=(48, 96)).astype(np.float32)
    for mode, bits, block in (("int8", 8, [1, 0]), ("int4", 4, [1, 32])):
        ours = quant.quantize(w, mode)
        codes, scale, zero = compute_qparams(w.astype(np.float16), bits, True, "LINEAR_SYMMETRIC", None, block)
        assert zero is None
        np.testing.assert_allclose(ours.scale.astype(np.float32), np.asarray(scale, np.float32).reshape(ours.scale.shape), rtol=1e-3)
        # Same scales; codes differ by at most one step where coremltools' float16 division rounds
        # across a .5 boundary (we divide in float32 by the stored scale: never a worse reconstruction).
        theirs = np.asarray(codes).astype(np.int8)
        assert np.abs(ours.codes.astype(int) - theirs).max() <= 1 and np.mean(ours.codes == theirs) > 0.95
        their_w = theirs * np.repeat(np.asarray(scale, np.float16).reshape(ours.scale.shape), ours.block, 1)
        assert np.abs(ours.dequantize() - w).mean() <= np.abs(their_w.astype(np.float32) - w).mean()
        assert np.abs(ours.dequantize() - w).max() <= ours.scale.astype(np.float32).max() / 2 + 1e-3
    assert quant.quantize(w[:, :40], "int4") is None  # 40 does not divide into blocks of 32: stays float
    assert quant.quantize(w[:8, :8], "int8") is None  # small tensors stay float, as in coremltools


def test_quantization_in_row_chunks_equals_the_whole_tensor(monkeypatch):
    w = np.random.default_rng(1).normal(size=(37, 96)).astype(np.float32)
    whole = {m: quant.quantize(w, m) for m in ("int8", "int4")}
    monkeypatch.setattr(quant, "CHUNK", 200)  # 2 rows at a time, the last chunk short
    for mode, q in whole.items():
        chunked = quant.quantize(w, mode)
        assert np.array_equal(chunked.codes, q.codes) and np.array_equal(chunked.scale, q.scale)
        assert np.array_equal(chunked.dequantize(np.float16), q.dequantize().astype(np.float16))


@pytest.mark.parametrize("kind", ["bfloat16", "mlx int4"])
def test_weights_are_read_from_disk_as_mlx_lm_loads_them(tmp_path, kind):
    """Export reads each base tensor from the safetensors files when it converts it; what it reads
    is what mlx_lm.load gives (an mlx-quantized checkpoint dequantized per tensor)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import dequantize_model, quantize_model

    from mlx_lc import model_folder
    from mlx_lc.export.package import load_model
    from mlx_lc.export.weights import SafetensorsWeights

    src = write_model(tmp_path / "f32", arch="qwen2", tie=False, seed=7)
    model, tok = model_folder.load(str(src))
    config = json.loads((src / "config.json").read_text())
    if kind == "bfloat16":
        model.set_dtype(mx.bfloat16)
    else:
        model, config = quantize_model(model, config, group_size=32, bits=4)
    folder = model_folder.save(tmp_path / "m", model, tok, config)

    weights = load_model(str(folder))[4]
    assert isinstance(weights, SafetensorsWeights) and (kind == "mlx int4") == bool(weights.quantized)
    loaded = model_folder.load(str(folder))[0]
    expected = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(dequantize_model(loaded).parameters())}
    assert set(weights) == set(expected) and weights.shapes == {k: v.shape for k, v in expected.items()}
    for name, want in expected.items():
        assert np.array_equal(weights[name], want), name
        assert np.array_equal(weights.read(name, np.float16), want.astype(np.float16)), name
    rep = export(ExportConfig(model=str(folder), out=str(tmp_path / "e"), quantize="int4", context=CONTEXT,
                              compositions=[parse("base:summarize+es=" + str(write_adapter(tmp_path / "a", src)))],
                              verify=True, verify_steps=4), progress=False)
    assert rep["verify"]["base"]["passed"], rep["verify"]


def test_interpreter_holds_each_weight_once_in_its_stored_dtype(world):
    """Functions share the package's constants: one array per weight for every function, float16 as
    declared (int4 folded to float16, its codes not kept), never a float32 copy."""
    from mlx_lc.export.interpret import Interpreter
    from mlx_lc.export.verify import causal_mask

    interp = Interpreter(pkg(world, "int4"))
    fns = ("sum_es_prefill", "sum_es_decode")
    for fn in fns:
        interp.run(fn, {"inputIds": np.array([[1]], np.int32), "causalMask": causal_mask(1, 0)}, interp.make_state(fn))
    prefill, decode = (interp._loaded[f].consts for f in fns)
    big = {n for n, v in prefill.items() if v.size > 2048}
    assert big and big <= set(decode)
    assert all(prefill[n] is decode[n] for n in big)  # the same array, not an equal copy
    assert {v.dtype for v in prefill.values() if v.dtype.kind == "f"} == {np.dtype(np.float16)}
    assert not any(v.dtype == np.int8 for v in prefill.values())  # int4 codes dropped once folded
    held = sum({id(v): v.nbytes for f in fns for v in interp._loaded[f].consts.values()}.values())
    rep = world["int4"]  # the float16 bytes of the base weights and low-rank factors, plus small tables
    assert held <= 2 * rep["base_params"] + rep["shared_lowrank_bytes"] + 64 * 1024, held


# ---------------------------------------------------------------- manifest and files

def test_manifest_matches_the_package(world):
    out = world["root"] / "multi"
    man = manifest_io.read(out / "manifest.json")
    spec = ct.utils.load_spec(str(out / man["package"]))
    fns = {f.name: f for f in spec.description.functions}
    assert man["model"]["context_length"] == CONTEXT and man["model"]["quantization"] == "none"
    assert [c["name"] for c in man["compositions"]] == ["sum_es", "summarize+fr"]
    from mlx_lm.utils import load as mlx_load

    _, tok = mlx_load(str(world["model"]))
    for comp in man["compositions"]:
        for kind in ("prefill", "decode"):
            f = fns[comp["functions"][kind]]
            assert set(man["io"]["inputs"]) == {i.name for i in f.input}
            assert set(man["io"]["outputs"]) == {o.name for o in f.output}
            for s in f.state:
                assert man["io"]["states"][s.name]["shape"] == list(s.type.stateType.arrayType.shape)
        text = "Anna: hi\nBen: hello"
        assert comp["prompt"]["prefix"] + text + comp["prompt"]["suffix"] == \
            tasks.format_prompt(tok, tasks.get(comp["task"]), text)
    assert man["io"]["outputs"]["logits"]["shape"] == [1, 1, man["model"]["vocab_size"]]  # the last position
    for f in man["tokenizer"]["files"]:
        assert (out / f).is_file()
    assert (out / "config.json").is_file() and json.loads((out / "export.json").read_text())["verify"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers


# ---------------------------------------------------------------- the command

def test_cli_fused_model_with_verify(world, tmp_path):
    from mlx_lc import adapters as adapters_io
    from mlx_lc.fuse import fuse

    fused = fuse(str(world["model"]), adapters_io.read(world["adapters"]["es"]), tmp_path / "fused")
    res = CliRunner().invoke(main, ["export", "coreml", "--fused", str(fused), "-t", "summarize+es", "--name", "es",
                                    "-o", str(tmp_path / "d"), "-q", "int8", "--context", "32",
                                    "--verify"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "es_prefill, es_decode" in res.output and "greedy tokens agree" in res.output
    assert manifest_io.read(tmp_path / "d" / "manifest.json")["model"]["quantization"] == "int8"


@pytest.mark.parametrize("args, message", [
    (["--composition", "broken"], "expected NAME[:TASK]=ADAPTER"),
    (["--composition", "x:summarize+es=/no/such/folder"], "folder not found"),
    (["-t", "summarize+es", "--context", "4096"], "longer than"),
    (["-t", "summarize+es", "--out", "Model.mlpackage"], "--out is a folder that will hold Model.mlpackage"),
    (["-t", "summarize"], "not a composition"),
    ([], "say which composition"),
])
def test_cli_errors_are_one_line(world, tmp_path, args, message):
    argv = ["export", "coreml", "-m", str(world["model"]), "-o", str(tmp_path / "M"), "--context", "32"]
    res = CliRunner().invoke(main, argv + args)
    assert res.exit_code != 0 and message in res.output, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_unsupported_architecture_fails_before_loading(tmp_path):
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    res = CliRunner().invoke(main, ["export", "coreml", "-m", str(tmp_path / "gpt"), "-t", "summarize+es",
                                    "-o", str(tmp_path / "M")])
    assert res.exit_code == 1 and "architecture 'gpt2' is not supported" in res.output


def test_missing_coremltools_gives_install_hint(world, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "coremltools", None)  # import coremltools -> ImportError
    with pytest.raises(MlxLcError, match=r'pip install "mlx-lc\[coreml\]"'):
        export(ExportConfig(model=str(world["model"]), out=str(tmp_path / "M"),
                            compositions=[parse(world["es"])]), progress=False)


# ---------------------------------------------------------------- mlx-lc export verify

def copy_export(world, name, dest: Path) -> Path:
    import shutil

    shutil.copytree(world["root"] / name, dest)
    return dest


def scale_stored_tensor(package: Path, arr: np.ndarray, factor: float) -> None:
    """Multiply one tensor inside the package's weight.bin, found by its exact float16 bytes."""
    blob = package.joinpath(*WEIGHTS)
    data = blob.read_bytes()
    old = np.ascontiguousarray(arr, dtype=np.float16).tobytes()
    at = data.find(old)
    assert at >= 0 and data.find(old, at + 1) < 0  # found, once
    new = (np.asarray(arr, np.float32) * factor).astype(np.float16).tobytes()
    blob.write_bytes(data[:at] + new + data[at + len(old):])


def test_verify_command_passes_a_correct_export(world, tmp_path):
    out = copy_export(world, "int4", tmp_path / "e")
    res = CliRunner().invoke(main, ["export", "verify", str(out), "--steps", "4"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "verify passed" in res.output and "against the float model" in res.output
    v = json.loads((out / "export.json").read_text())["verify"]["sum_es"]
    assert v["passed"] and v["decode_steps"] == 4


@pytest.mark.parametrize("name, tensor", [
    ("single_es", "model.layers.1.mlp.down_proj.weight"),  # a float16 weight
    ("int4", "model.layers.1.mlp.down_proj.weight"),  # the block scales of an int4 weight
])
def test_verify_fails_a_package_whose_weights_changed_after_export(world, tmp_path, name, tensor):
    from mlx_lc.export.package import load_model

    out = copy_export(world, name, tmp_path / "e")
    w = load_model(str(world["model"]))[4][tensor]
    stored = w if name == "single_es" else quant.quantize(w, "int4").scale
    scale_stored_tensor(out / "Model.mlpackage", stored, 1.5)
    res = CliRunner().invoke(main, ["export", "verify", str(out), "--steps", "4"])
    assert res.exit_code == 1, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: verify: the package disagrees with MLX") and "sum_es is off by" in last, res.output
    assert "Traceback" not in res.output
    assert json.loads((out / "export.json").read_text())["verify"]["sum_es"]["passed"] is False


def test_export_coreml_verify_exits_non_zero_beyond_the_tolerance_and_keeps_the_report(world, tmp_path, monkeypatch):
    import mlx_lc.export.verify as verify

    monkeypatch.setattr(verify, "REL_TOLERANCE", 1e-9)  # below any float16 package's error
    res = CliRunner().invoke(main, ["export", "coreml", "-m", str(world["model"]), "--composition", world["es"],
                                    "-o", str(tmp_path / "e"), "-q", "none", "--context", "32", "--verify",
                                    "--verify-steps", "2"])
    assert res.exit_code == 1, res.output
    assert "verify sum_es: max |logit diff|" in res.output  # the report is printed first
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: --verify: the package disagrees with MLX") and "tolerance 1e-09" in last
    assert json.loads((tmp_path / "e" / "export.json").read_text())["verify"]["sum_es"]["passed"] is False


def test_verify_refuses_a_folder_that_is_not_an_export(tmp_path):
    res = CliRunner().invoke(main, ["export", "verify", str(tmp_path)])
    assert res.exit_code == 1 and "is not an mlx-lc export folder" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_verdict_passes_float16_rounding_and_fails_beyond_the_tolerance():
    from mlx_lc.export.verify import failures

    ok = {"finite": True, "max_rel_err": 5 * 2.0 ** -11}  # a few float16 roundings
    assert failures({"a": ok}) == []
    assert failures({"a": dict(ok, max_rel_err=0.05)}) == ["a is off by 0.05 of max |logit| (tolerance 0.01)"]
    assert "non-finite" in failures({"a": dict(ok, finite=False)})[0]


# ---------------------------------------------------------------- Core ML itself (macOS only)

@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML predicts only on macOS")
def test_coreml_predicts_like_mlx(world):
    from mlx_lc.export.verify import causal_mask

    path = str(pkg(world, "multi"))
    prefill = ct.models.MLModel(path, function_name="sum_es_prefill")
    decode = ct.models.MLModel(path, function_name="sum_es_decode")
    state = prefill.make_state()
    tokens = world["multi"]["verify"]["sum_es"]["mlx_tokens"]  # MLX's greedy run on this prompt
    from mlx_lm.utils import load as mlx_load

    from mlx_lc.export.verify import prompt_tokens

    _, tok = mlx_load(str(world["model"]))
    prompt = prompt_tokens(tok, "summarize+es", CONTEXT, 16)
    out = prefill.predict({"inputIds": np.array([prompt], np.int32), "causalMask": causal_mask(len(prompt), 0)},
                          state=state)
    got = [int(np.argmax(out["logits"][0, -1]))]
    for i, t in enumerate(tokens[:-1]):
        out = decode.predict({"inputIds": np.array([[t]], np.int32), "causalMask": causal_mask(1, len(prompt) + i)},
                             state=state)
        got.append(int(np.argmax(out["logits"][0, -1])))
    assert got == tokens
