"""A numpy interpreter for the saved Core ML package, so the export can be checked where Core ML
cannot run (Linux). It reads the package's own milproto back with coremltools, and evaluates
exactly the ops the exporter emits (plus the defaults the loader materialises), one at a time.

Precision follows the model: each op computes in float32 and rounds its result to the dtype the
program declares (float16 everywhere here), as Apple GPUs store fp16 and accumulate in fp32.
constexpr weights are dequantized once (to float16), as Core ML does at load time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MlxLcError

WEIGHTS_DIR = ("Data", "com.apple.CoreML", "weights")


def _f32(x) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _slice_index(shape, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    n = len(shape)
    stride = [1] * n if stride is None else list(stride)
    begin_mask = [False] * n if begin_mask is None else list(begin_mask)
    end_mask = [False] * n if end_mask is None else list(end_mask)
    squeeze_mask = [False] * n if squeeze_mask is None else list(squeeze_mask)
    idx = []
    for i in range(n):
        if squeeze_mask[i]:
            idx.append(int(begin[i]))
        else:
            idx.append(slice(None if begin_mask[i] else int(begin[i]), None if end_mask[i] else int(end[i]),
                             int(stride[i])))
    return tuple(idx)


def _slice_args(a):
    return dict(stride=a.get("stride"), begin_mask=a.get("begin_mask"), end_mask=a.get("end_mask"),
                squeeze_mask=a.get("squeeze_mask"))


def _softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _split(a):
    x, axis = a["x"], int(a["axis"])
    if a.get("split_sizes") is not None:
        points = np.cumsum(a["split_sizes"])[:-1]
        return np.split(x, points, axis=axis)
    return np.split(x, int(a["num_splits"]), axis=axis)


def _layer_norm(a):
    x = _f32(a["x"])
    axes = tuple(int(i) for i in (a["axes"] if a.get("axes") is not None else range(x.ndim)))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + float(a.get("epsilon", 1e-5)))
    if a.get("gamma") is not None:
        y = y * _f32(a["gamma"])
    if a.get("beta") is not None:
        y = y + _f32(a["beta"])
    return y


def _sdpa(a):
    q, k, v = _f32(a["query"]), _f32(a["key"]), _f32(a["value"])
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    mask = a.get("attn_mask")
    if mask is not None:
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + _f32(mask)
    return _softmax(scores) @ v


def _matmul(a):
    x, y = _f32(a["x"]), _f32(a["y"])
    if a.get("transpose_x"):
        x = np.swapaxes(x, -1, -2)
    if a.get("transpose_y"):
        y = np.swapaxes(y, -1, -2)
    return x @ y


def _linear(a):
    y = _f32(a["x"]) @ _f32(a["weight"]).T
    return y + _f32(a["bias"]) if a.get("bias") is not None else y


def _blockwise(a):
    data, scale = np.asarray(a["data"]), _f32(a["scale"])
    for axis in range(data.ndim):
        block = data.shape[axis] // scale.shape[axis]
        if block > 1:
            scale = np.repeat(scale, block, axis=axis)
    out = data.astype(np.float32)
    if a.get("offset") is not None:
        off = _f32(a["offset"])
        for axis in range(data.ndim):
            block = data.shape[axis] // off.shape[axis]
            if block > 1:
                off = np.repeat(off, block, axis=axis)
        out = out - off
    return out * scale


def _slice_update(a):
    out = np.array(a["x"], copy=True)
    idx = _slice_index(out.shape, a["begin"], a["end"], **_slice_args(a))
    out[idx] = np.asarray(a["update"]).reshape(out[idx].shape)
    return out


def _arith(fn):
    def run(a):
        x, y = np.asarray(a["x"]), np.asarray(a["y"])
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            return fn(_f32(x), _f32(y))
        return fn(x, y)
    return run


OPS = {
    "gather": lambda a: np.take(a["x"], np.asarray(a["indices"]).astype(np.int64), axis=int(a.get("axis", 0))),
    "shape": lambda a: np.array(np.shape(a["x"]), dtype=np.int32),
    "slice_by_index": lambda a: np.asarray(a["x"])[_slice_index(np.shape(a["x"]), a["begin"], a["end"], **_slice_args(a))],
    "slice_update": _slice_update,
    "add": _arith(np.add),
    "sub": _arith(np.subtract),
    "mul": _arith(np.multiply),
    "real_div": _arith(np.divide),
    "less_equal": lambda a: np.less_equal(a["x"], a["y"]),
    "select": lambda a: np.where(a["cond"], a["a"], a["b"]),
    "squeeze": lambda a: np.squeeze(a["x"], axis=None if a.get("axes") is None else tuple(int(i) for i in a["axes"])),
    "expand_dims": lambda a: np.expand_dims(a["x"], tuple(int(i) for i in a["axes"])),
    "range_1d": lambda a: np.arange(a["start"], a["end"], a["step"]),
    "tile": lambda a: np.tile(a["x"], tuple(int(r) for r in a["reps"])),
    "concat": lambda a: np.concatenate([np.asarray(v) for v in a["values"]], axis=int(a["axis"])),
    "split": _split,
    "reshape": lambda a: np.reshape(a["x"], tuple(int(d) for d in a["shape"])),
    "transpose": lambda a: np.transpose(a["x"], tuple(int(p) for p in a["perm"])),
    "linear": _linear,
    "matmul": _matmul,
    "layer_norm": _layer_norm,
    "silu": lambda a: _f32(a["x"]) / (1.0 + np.exp(-_f32(a["x"]))),
    "scaled_dot_product_attention": _sdpa,
    "constexpr_blockwise_shift_scale": _blockwise,
    "cast": lambda a: np.asarray(a["x"]),
}
STATE_OPS = ("read_state", "coreml_update_state")


class Interpreter:
    """Run functions of a saved .mlpackage on numpy arrays, with Core ML-style state."""

    def __init__(self, path: str | Path):
        from .coreml import import_coremltools

        ct = import_coremltools()
        from coremltools.converters.mil.frontend.milproto import load as milproto
        from coremltools.converters.mil.mil import types

        path = Path(path)
        if not (path / "Manifest.json").is_file():
            raise MlxLcError(f"not a Core ML package: {path}")
        self.spec = ct.utils.load_spec(str(path))
        self.program = milproto.load(self.spec, self.spec.specificationVersion, str(path.joinpath(*WEIGHTS_DIR)))
        self._types = types
        self._consts: dict[tuple[str, str], np.ndarray] = {}

    @property
    def functions(self) -> list[str]:
        return list(self.program.functions)

    def state_shapes(self, function: str) -> dict[str, tuple[int, ...]]:
        fn = self.program.functions[function]
        return {name: tuple(var.sym_type.wrapped_type().get_shape()) for name, var in fn.inputs.items()
                if self._types.is_state(var.sym_type)}

    def make_state(self, function: str) -> dict[str, np.ndarray]:
        return {name: np.zeros(shape, np.float16) for name, shape in self.state_shapes(function).items()}

    def _np_dtype(self, var):
        return self._types.nptype_from_builtin(var.dtype)

    def run(self, function: str, inputs: dict[str, np.ndarray], state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if function not in self.program.functions:
            raise MlxLcError(f"no function {function!r} in the package (has {', '.join(self.functions)})")
        fn = self.program.functions[function]
        env: dict[str, object] = {}
        for name, var in fn.inputs.items():
            if not self._types.is_state(var.sym_type):
                env[name] = np.asarray(inputs[name]).astype(self._np_dtype(var))
        for op in fn.operations:
            if op.op_type == "const" or op.op_type.startswith("constexpr_"):
                key = (function, op.outputs[0].name)
                if key not in self._consts:
                    val = np.asarray(op.outputs[0].val if op.op_type == "const" else self._eval(op, env)[0])
                    if val.dtype.kind == "f":  # rounded to the declared dtype once, kept in float32 for speed
                        val = val.astype(self._np_dtype(op.outputs[0])).astype(np.float32)
                    self._consts[key] = val
                env[op.outputs[0].name] = self._consts[key]
                continue
            outs = self._eval(op, env, state)
            for var, val in zip(op.outputs, outs):
                env[var.name] = np.asarray(val).astype(self._np_dtype(var), copy=False)
        return {var.name: env[var.name] for var in fn.outputs}

    def _eval(self, op, env, state=None) -> list:
        args = {}
        for name, var in op.inputs.items():
            if isinstance(var, (list, tuple)):
                args[name] = [env[v.name] for v in var]
            elif self._types.is_state(var.sym_type):
                args[name] = var.name
            else:
                args[name] = env[var.name]
        if op.op_type == "read_state":
            return [np.array(state[args["input"]], copy=True)]
        if op.op_type == "coreml_update_state":
            state[args["state"]] = np.asarray(args["value"]).astype(np.float16)
            return [state[args["state"]]]
        if op.op_type not in OPS:
            raise MlxLcError(f"the verifier does not know op {op.op_type!r} (in {op.name})")
        out = OPS[op.op_type](args)
        return list(out) if isinstance(out, list) else [out]
