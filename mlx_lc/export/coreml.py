"""Write a `graph.Graph` as a stateful, multifunction Core ML package (iOS 18, fp16).

Per composition two functions, `<name>_prefill` (1..context tokens) and `<name>_decode` (one
token), share one set of base weights: every constant carries a `weight_id` (its name or content
key), which coremltools' serializer uses to write a blob once and point all functions at it
(the mechanism behind `coremltools.utils.save_multifunction`, without the round trip through
temporary packages). The KV cache lives in Core ML state (`keyCache`, `valueCache`), updated
in place with `slice_update` + `coreml_update_state`, so both functions share one MLState.

Names follow Apple's Llama export and swift-transformers' `LanguageModel`: inputs `inputIds`
(int32 [1, T]) and `causalMask` (fp16 [1, 1, T, P+T], additive), output `logits` (fp16 [1, 1, V]: the
last position only, the one a decode loop samples from; all T rows would be T * V values to copy),
states `keyCache`/`valueCache` (fp16 [layers, 1, kv_heads, context, head_dim]). The number of
cached tokens P is read from the shapes, P = causalMask.shape[-1] - inputIds.shape[-1], as in
Apple's export. The mask is added to a built-in causal mask, so an all-zero mask (what
swift-transformers passes) still attends causally.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from ..errors import MlxLcError
from . import quantize as quant
from .graph import PROJECTIONS, Composition, Graph, rope_tables
from .weights import read

INPUT_IDS, CAUSAL_MASK, LOGITS = "inputIds", "causalMask", "logits"
KEY_CACHE, VALUE_CACHE = "keyCache", "valueCache"


def import_coremltools():
    """coremltools, imported quietly (on Linux it logs that it cannot predict), or a one-line hint."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    try:
        import coremltools as ct
    except ImportError:
        raise MlxLcError('Core ML export needs coremltools: pip install "mlx-lc[coreml]"') from None
    return ct


def function_names(comp: Composition) -> dict[str, str]:
    return {"prefill": f"{comp.name}_prefill", "decode": f"{comp.name}_decode"}


def io_description(g: Graph) -> dict:
    """Inputs, outputs and states with their shapes, for the manifest ("T", "P" are flexible)."""
    s, ctx = g.spec, g.context
    cache = {"shape": [s.num_layers, 1, s.num_kv_heads, ctx, s.head_dim], "dtype": "float16"}
    return {
        "inputs": {INPUT_IDS: {"shape": [1, "T"], "dtype": "int32"},
                   CAUSAL_MASK: {"shape": [1, 1, "T", "P+T"], "dtype": "float16"}},
        "outputs": {LOGITS: {"shape": [1, 1, s.vocab_size], "dtype": "float16"}},  # the last position only
        "states": {KEY_CACHE: dict(cache), VALUE_CACHE: dict(cache)},
        "dims": {"T": {"prefill": [1, ctx], "decode": [1, 1]}, "P": [0, ctx - 1], "P+T": [1, ctx]},
    }


class _Consts:
    """Constants shared by all functions, made once: the base weights in the form the package stores
    them (float16, or quantized codes and scales), and float16 copies of the other constants."""

    def __init__(self, g: Graph, mode: str):
        self.g, self.mode = g, mode
        self.fp16: dict[str, np.ndarray] = {}
        self.quantized: dict[str, quant.Quantized | None] = {}  # every 2-D weight: None where it stays float16

    def half(self, key: str, arr: np.ndarray) -> np.ndarray:
        if key not in self.fp16:
            self.fp16[key] = np.ascontiguousarray(arr, dtype=np.float16)
        return self.fp16[key]

    def read_all(self, progress=None) -> None:
        """Read each base weight once (float32, from disk for a model folder) and keep only its
        stored form: the export never holds the float model."""
        for name, shape in self.g.shapes.items():
            matrix = name.endswith(".weight") and len(shape) == 2
            if matrix and quant.applies(shape, self.mode):
                self.quantized[name] = quant.quantize(read(self.g.weights, name), self.mode)
            else:  # read straight into float16: no float32 copy of a float weight
                if matrix:
                    self.quantized[name] = None
                self.fp16[name] = read(self.g.weights, name, np.float16)
            if progress is not None:
                progress.update(1)


class _Function:
    """Builds one MIL function; must be called inside a `mb.function` body."""

    def __init__(self, mb, types, g: Graph, comp: Composition, consts: _Consts):
        self.mb, self.types, self.g, self.comp, self.consts = mb, types, g, comp, consts
        self.cache: dict[str, object] = {}

    def const(self, key: str, arr: np.ndarray | None = None, dtype=None):
        """One const op per function per key; `weight_id` makes all functions share its blob.
        Without `arr`, a base weight that stays float16."""
        if key not in self.cache:
            if arr is None:
                val = self.consts.fp16[key]
            else:
                val = self.consts.half(key, arr) if dtype is None else np.asarray(arr, dtype=dtype)
            var = self.mb.const(val=val, name=re.sub(r"\W", "_", key))
            var.op.weight_id = key
            self.cache[key] = var
        return self.cache[key]

    def weight(self, name: str):
        """A base weight: fp16 const, or int8/int4 codes dequantized by constexpr_blockwise_shift_scale."""
        if "w:" + name in self.cache:
            return self.cache["w:" + name]
        q = self.consts.quantized.get(name)
        if q is None:
            var = self.const(name)
        else:
            dtype = self.types.np_int4_dtype if q.bits == 4 else np.int8
            codes = self.const(name + ".codes", q.codes, dtype=dtype)
            scale = self.const(name + ".scales", q.scale, dtype=np.float16)
            var = self.mb.constexpr_blockwise_shift_scale(data=codes, scale=scale, name=re.sub(r"\W", "_", name))
        self.cache["w:" + name] = var
        return var

    def zeros(self, n: int):
        return self.const(f"zeros.{n}", np.zeros(n, np.float32))

    def linear(self, x, name: str, bias_name: str | None = None, out_name: str | None = None):
        bias = self.const(bias_name) if bias_name in self.consts.fp16 else self.zeros(self.g.shapes[name][0])
        kwargs = {"name": out_name} if out_name else {}
        return self.mb.linear(x=x, weight=self.weight(name), bias=bias, **kwargs)

    def scaled(self, x, c: float):
        return x if c == 1.0 else self.mb.mul(x=x, y=np.float16(c))

    def lowrank(self, x, key: str):
        """x @ F for a stored factor F (in, r), as `linear` on F^T: one op, no transpose flags."""
        f = self.g.store.tensors[key]
        return self.mb.linear(x=x, weight=self.const(key + ".T", f.T), bias=self.zeros(f.shape[1]))

    def project(self, x, layer: int, rel: str):
        """Base projection plus this composition's low-rank update, computed as small matmuls."""
        mb, path = self.mb, f"model.layers.{layer}.{rel}"
        y = self.linear(x, path + ".weight", path + ".bias")
        st = self.g.store.tensors
        for term in self.comp.updates.get(path, []):
            # With one coefficient per side (a merge's equal weights) the scalars leave the sums and
            # join p, or one final mul: fewer ops in every function's graph.
            uniform = len({c for _, c in term.a}) == 1 and len({c for _, c in term.b}) == 1
            z = u = None
            for key, c in term.a:
                part = self.lowrank(x, key) if uniform else self.scaled(self.lowrank(x, key), c)
                z = part if z is None else mb.add(x=z, y=part)
            for key, c in term.b:
                part = self.lowrank(z, key) if uniform else self.scaled(self.lowrank(z, key), c)
                u = part if u is None else mb.add(x=u, y=part)
            scalar = term.a[0][1] * term.b[0][1] if uniform else 1.0
            if term.col_scale:
                p = st[term.col_scale] * scalar
                u = mb.mul(x=u, y=self.const(f"{term.col_scale}*{scalar!r}", p))
            else:
                u = self.scaled(u, scalar)
            y = mb.add(x=y, y=u)
        return y

    def rmsnorm(self, x, name: str):
        # layer_norm over [x, -x] (mean 0, variance mean(x^2)) is exactly RMSNorm, computed by one
        # fused op: squaring in fp16 op by op would overflow once |x| > 256 (Qwen's outliers are larger).
        mb, w = self.mb, self.consts.fp16[name]
        d = w.shape[0]
        both = mb.concat(values=[x, mb.mul(x=x, y=np.float16(-1.0))], axis=-1)
        y = mb.layer_norm(x=both, axes=[-1], gamma=self.const(name + ".x2", np.concatenate([w, w])),
                          epsilon=np.float16(max(self.g.spec.rms_norm_eps, 1e-7)))
        return mb.slice_by_index(x=y, begin=[0, 0, 0], end=[1, 1, d], end_mask=[True, True, False])

    def rope(self, x, cos, sin_signed):
        # rotate_half(x) * sin == concat(x2, x1) * concat(-sin, sin)
        mb = self.mb
        x1, x2 = mb.split(x=x, num_splits=2, axis=-1)
        return mb.add(x=mb.mul(x=x, y=cos), y=mb.mul(x=mb.concat(values=[x2, x1], axis=-1), y=sin_signed))

    def last_position(self, x):
        """x[:, -1:, :]: the head runs on one position, not T (prefill's largest matmul and output)."""
        return self.mb.slice_by_index(x=x, begin=[0, -1, 0], end=[1, 0, 0], end_mask=[True, True, True])

    def build(self, input_ids, causal_mask, key_cache, value_cache, progress=None):
        mb, s, g = self.mb, self.g.spec, self.g
        hd, kvh, H = s.head_dim, s.num_kv_heads, s.num_heads
        i32 = lambda v: np.array(v, dtype=np.int32)  # noqa: E731

        x = mb.gather(x=self.weight("model.embed_tokens.weight"), indices=input_ids, axis=0)  # (1, T, D)
        t1 = mb.slice_by_index(x=mb.shape(x=input_ids), begin=[1], end=[2])  # (1,) int32
        s1 = mb.slice_by_index(x=mb.shape(x=causal_mask), begin=[3], end=[4])
        p1 = mb.sub(x=s1, y=t1)  # tokens already cached
        pos = mb.range_1d(start=mb.squeeze(x=p1), end=mb.squeeze(x=s1), step=np.int32(1))  # (T,)
        cos_t, sin_t = rope_tables(s, g.context)
        half = hd // 2
        sin_signed = np.concatenate([-sin_t[:, :half], sin_t[:, half:]], axis=1)
        cos = mb.gather(x=self.const("rope.cos", cos_t), indices=pos, axis=0)  # (T, hd)
        sin = mb.gather(x=self.const("rope.sin_signed", sin_signed), indices=pos, axis=0)
        # Built-in causal mask: key j is visible to the query at position p iff j <= p.
        keys_idx = mb.range_1d(start=np.int32(0), end=mb.squeeze(x=s1), step=np.int32(1))  # (S,)
        visible = mb.less_equal(x=mb.expand_dims(x=keys_idx, axes=[0]), y=mb.expand_dims(x=pos, axes=[1]))
        causal = mb.select(cond=visible, a=np.float16(0.0), b=np.float16(-np.inf))  # (T, S)
        mask = mb.add(x=causal_mask, y=causal)  # (1, 1, T, S)
        if s.n_rep > 1:  # queries of one kv group are stacked along the sequence axis
            mask = mb.tile(x=mask, reps=[1, 1, s.n_rep, 1])
        zero = i32([0])

        for layer in range(s.num_layers):
            pre = f"model.layers.{layer}."
            h = self.rmsnorm(x, pre + "input_layernorm.weight")
            q = mb.transpose(x=mb.reshape(x=self.project(h, layer, PROJECTIONS[0]), shape=[1, -1, H, hd]), perm=[0, 2, 1, 3])
            k = mb.transpose(x=mb.reshape(x=self.project(h, layer, PROJECTIONS[1]), shape=[1, -1, kvh, hd]), perm=[0, 2, 1, 3])
            v = mb.transpose(x=mb.reshape(x=self.project(h, layer, PROJECTIONS[2]), shape=[1, -1, kvh, hd]), perm=[0, 2, 1, 3])
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            begin = mb.concat(values=[i32([layer]), zero, zero, p1, zero], axis=0)
            end = mb.concat(values=[i32([layer + 1]), i32([1, kvh]), s1, i32([hd])], axis=0)
            read_begin = i32([layer, 0, 0, 0, 0])
            cached = []
            for state, new in ((key_cache, k), (value_cache, v)):
                full = mb.slice_update(x=mb.read_state(input=state), update=mb.expand_dims(x=new, axes=[0]),
                                       begin=begin, end=end)
                full = mb.coreml_update_state(state=state, value=full)
                cached.append(mb.reshape(x=mb.slice_by_index(x=full, begin=read_begin, end=end), shape=[1, kvh, -1, hd]))
            qg = mb.reshape(x=q, shape=[1, kvh, -1, hd])  # (1, KV, n_rep * T, hd)
            a = mb.scaled_dot_product_attention(query=qg, key=cached[0], value=cached[1], attn_mask=mask)
            a = mb.transpose(x=mb.reshape(x=a, shape=[1, H, -1, hd]), perm=[0, 2, 1, 3])
            a = mb.reshape(x=a, shape=[1, -1, H * hd])
            x = mb.add(x=x, y=self.project(a, layer, PROJECTIONS[3]))
            h = self.rmsnorm(x, pre + "post_attention_layernorm.weight")
            act = mb.mul(x=mb.silu(x=self.project(h, layer, PROJECTIONS[4])), y=self.project(h, layer, PROJECTIONS[5]))
            x = mb.add(x=x, y=self.project(act, layer, PROJECTIONS[6]))
            if progress is not None:
                progress.update(1)
        x = self.rmsnorm(self.last_position(x), "model.norm.weight")
        head = "model.embed_tokens.weight" if s.tie_word_embeddings else "lm_head.weight"
        return self.linear(x, head, None, out_name=LOGITS)


def _body(mb, types, g: Graph, comp: Composition, consts: _Consts, bar):
    # mb.function names the inputs after the parameters, so they carry the Core ML names.
    def body(inputIds, causalMask, keyCache, valueCache):  # noqa: N803
        return _Function(mb, types, g, comp, consts).build(inputIds, causalMask, keyCache, valueCache, bar)
    return body


def build_program(g: Graph, mode: str = "none", progress_factory=None):
    """The multifunction MIL program: `<name>_prefill` and `<name>_decode` per composition."""
    ct = import_coremltools()
    from coremltools.converters.mil import mil
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol, types

    s, ctx = g.spec, g.context
    consts = _Consts(g, mode)
    desc = "read weights" + (f" ({mode})" if mode != "none" else "")
    bar = progress_factory(total=len(g.shapes), desc=desc, unit="tensor") if progress_factory else None
    consts.read_all(bar)
    if bar is not None:
        bar.close()
    cache_shape = (s.num_layers, 1, s.num_kv_heads, ctx, s.head_dim)
    prog = mil.Program()
    n_fn = 2 * len(g.compositions)
    bar = progress_factory(total=n_fn * s.num_layers, desc="build graph", unit="layer") if progress_factory else None
    for comp in g.compositions:
        for kind, fname in function_names(comp).items():
            decode = kind == "decode"
            t = 1 if decode else get_new_symbol()
            specs = [mb.TensorSpec((1, t), dtype=types.int32),
                     mb.TensorSpec((1, 1, 1 if decode else get_new_symbol(), get_new_symbol()), dtype=types.fp16),
                     mb.StateTensorSpec(cache_shape, dtype=types.fp16),
                     mb.StateTensorSpec(cache_shape, dtype=types.fp16)]

            fn = mb.function(input_specs=specs, opset_version=ct.target.iOS18)(_body(mb, types, g, comp, consts, bar))
            rng = lambda: ct.RangeDim(1, ctx, default=1)  # noqa: E731
            fn.set_input_types((
                ct.TensorType(name=INPUT_IDS, shape=ct.Shape((1, 1 if decode else rng())), dtype=np.int32),
                ct.TensorType(name=CAUSAL_MASK, shape=ct.Shape((1, 1, 1 if decode else rng(), rng())), dtype=np.float16),
            ))
            prog.add_function(fname, fn)
    if bar is not None:
        bar.close()
    prog.default_function_name = function_names(g.compositions[0])["prefill"]
    prog.export_as_multifunction = True
    return prog, consts


def write_package(g: Graph, out: str | Path, mode: str = "none", metadata: dict | None = None,
                  progress_factory=None) -> dict:
    """Convert and save `out` (.mlpackage); returns quantization statistics."""
    ct = import_coremltools()
    prog, consts = build_program(g, mode, progress_factory)
    try:
        mlmodel = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                             compute_precision=ct.precision.FLOAT16, pass_pipeline=ct.PassPipeline.EMPTY,
                             skip_model_load=True)
    except Exception as e:  # a failure here is ours, not the user's: keep the first line
        raise MlxLcError(f"Core ML conversion failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    desc = mlmodel._spec.description
    desc.metadata.shortDescription = (metadata or {}).pop("description", "") or desc.metadata.shortDescription
    desc.metadata.author = "mlx-lc"
    desc.metadata.userDefined.update({k: str(v) for k, v in (metadata or {}).items()})
    mlmodel.save(str(out))
    quantized = {n: q for n, q in consts.quantized.items() if q is not None}
    return {"quantized_tensors": len(quantized), "float_tensors": len(consts.quantized) - len(quantized),
            "quantized_params": int(sum(q.codes.size for q in quantized.values()))}
