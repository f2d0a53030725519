"""A numpy interpreter for the saved Core ML package, so the export can be checked where Core ML
cannot run (Linux). It walks the package's own milproto (coremltools decodes each constant), and
evaluates exactly the ops the exporter emits, one at a time; an optional argument the package
leaves out takes MIL's default.

Precision follows the model: each op computes in float32 and rounds its result to the dtype the
program declares (float16 everywhere here), as Apple GPUs store fp16 and accumulate in fp32.
constexpr weights are dequantized once (to float16), as Core ML does at load time.

Memory: a function is read when first run, its constants one at a time; each is kept once for
all functions (an equal one, found by its bytes' hash, is the same array) in its declared dtype,
and a constexpr op is folded then, so int4 codes are not kept beside their float16 values. A
0.5B int4 package holds about its float16 weights, not a float32 copy per function.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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


def _linear(a, rows: int = 1 << 14):
    # A float16 weight is widened a block of rows at a time: a vocabulary-sized head in float32 at
    # once would be the largest allocation of the whole run.
    x, w = _f32(a["x"]), a["weight"]
    y = np.concatenate([x @ _f32(w[i:i + rows]).T for i in range(0, w.shape[0], rows)], axis=-1)
    return y + _f32(a["bias"]) if a.get("bias") is not None else y


def _blockwise(a, dtype=np.float32, rows: int = 1 << 12):
    """(data - offset) * scale, the blocks' offset and scale repeated over their block; computed in
    float32 a few rows (of the first axis) at a time and stored in `dtype`."""
    data, scale, offset = np.asarray(a["data"]), np.asarray(a["scale"]), a.get("offset")

    def expand(p, begin, end):  # p's rows covering data rows begin:end, repeated over each block
        p = _f32(p)
        block0 = data.shape[0] // p.shape[0]
        p = p[begin // block0:(end - 1) // block0 + 1]
        p = np.repeat(p, block0, axis=0)[begin % block0:begin % block0 + end - begin]
        for axis in range(1, data.ndim):
            if data.shape[axis] // p.shape[axis] > 1:
                p = np.repeat(p, data.shape[axis] // p.shape[axis], axis=axis)
        return p

    out = np.empty(data.shape, dtype)
    for i in range(0, data.shape[0], rows):
        j = min(i + rows, data.shape[0])
        x = data[i:j].astype(np.float32)
        if offset is not None:
            x = x - expand(np.asarray(offset), i, j)
        out[i:j] = x * expand(scale, i, j)
    return out


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


@dataclass
class _Op:
    type: str
    name: str
    inputs: dict[str, object]  # argument -> var name, ("state", name), or a list of them
    outputs: list[tuple[str, np.dtype]]
    last_use: tuple[str, ...] = ()  # values no later op reads: dropped after this one


@dataclass
class _Function:
    inputs: dict[str, np.dtype]  # non-state inputs
    states: dict[str, tuple[int, ...]]
    consts: dict[str, np.ndarray]  # var name -> value, shared with other functions where equal
    ops: list[_Op]
    outputs: list[str]


def _digest(val: np.ndarray) -> tuple:
    data = np.ascontiguousarray(val).reshape(-1).view(np.uint8)
    return val.dtype.str, val.shape, hashlib.sha1(data).hexdigest()


class Interpreter:
    """Run functions of a saved .mlpackage on numpy arrays, with Core ML-style state."""

    def __init__(self, path: str | Path):
        from .coreml import import_coremltools

        ct = import_coremltools()
        from coremltools.converters.mil.mil import types

        path = Path(path)
        if not (path / "Manifest.json").is_file():
            raise MlxLcError(f"not a Core ML package: {path}")
        self.spec = ct.utils.load_spec(str(path))
        self._weights_dir = str(path.joinpath(*WEIGHTS_DIR))
        self._types = types
        self._loaded: dict[str, _Function] = {}
        self._shared: dict[tuple, np.ndarray] = {}  # digest of a constant (or of a folded op's inputs) -> value
        self._live: set[tuple] = set()  # the digests loaded functions use

    @property
    def functions(self) -> list[str]:
        return list(self.spec.mlProgram.functions)

    def _function(self, name: str) -> _Function:
        if name not in self.spec.mlProgram.functions:
            raise MlxLcError(f"no function {name!r} in the package (has {', '.join(self.functions)})")
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def _load(self, name: str) -> _Function:
        """Walk one function's milproto: its ops, and its constants read one at a time (coremltools
        decodes each value), folded where constexpr and shared with other functions where equal."""
        from coremltools.converters.mil.frontend.milproto import load as milproto

        types = self._types
        fn = self.spec.mlProgram.functions[name]
        block = fn.block_specializations[fn.opset]
        context = milproto.TranscriptionContext(self._weights_dir)

        def np_dtype(value_type):
            t = milproto.proto_to_types(value_type)
            return types.nptype_from_builtin(t.get_primitive() if types.is_tensor(t) else t)

        inputs = {v.name: np_dtype(v.type) for v in fn.inputs if v.type.WhichOneof("type") == "tensorType"}
        states = self.state_shapes(name)
        consts: dict[str, np.ndarray] = {}
        digests: dict[str, tuple] = {}

        def constant(var: str, val, dtype) -> None:
            val = np.asarray(val)
            if val.dtype.kind == "f":  # rounded to the declared dtype
                val = val.astype(dtype, copy=False)
            key = _digest(val)
            consts[var], digests[var] = self._shared.setdefault(key, val), key

        ops = []
        for op in block.operations:
            outputs = [(o.name, np_dtype(o.type)) for o in op.outputs]
            op_name = outputs[0][0] if outputs else op.type  # for messages: ops are named by their outputs
            args: dict[str, object] = {}
            for arg, spec in op.inputs.items():
                names = []
                for i, b in enumerate(spec.arguments):
                    if b.WhichOneof("binding") == "name":
                        names.append(("state", b.name) if b.name in states else b.name)
                    else:  # an immediate value: a constant of its own
                        var = f"{op_name}.{arg}.{i}"
                        constant(var, milproto._load_value(context, b.value), np_dtype(b.value.type))
                        names.append(var)
                args[arg] = names if (len(names) > 1 or arg == "values") else names[0]
            if op.type == "const":
                constant(outputs[0][0], milproto._load_value(context, op.attributes["val"]), outputs[0][1])
            elif op.type.startswith("constexpr_"):  # folded now: Core ML too computes it at load
                key = (op.type, tuple(sorted((k, digests[v]) for k, v in args.items())))
                if key not in self._shared:
                    values = {k: consts[v] for k, v in args.items()}
                    if op.type == "constexpr_blockwise_shift_scale":  # straight into its dtype, by rows
                        self._shared[key] = _blockwise(values, outputs[0][1])
                    else:
                        self._shared[key] = np.asarray(self._op(op.type, op_name, values)[0]).astype(outputs[0][1])
                consts[outputs[0][0]], digests[outputs[0][0]] = self._shared[key], key
            else:
                ops.append(_Op(op.type, op_name, args, outputs))
        last: dict[str, int] = {}
        for i, op in enumerate(ops):
            for v in op.inputs.values():
                for n in (v if isinstance(v, list) else [v]):
                    if isinstance(n, str):
                        last[n] = i
        for i, op in enumerate(ops):
            op.last_use = tuple(n for n, j in last.items() if j == i and n not in block.outputs)
        used = set(last) | set(block.outputs)
        consts = {n: v for n, v in consts.items() if n in used}  # a constexpr's inputs are not needed again
        self._live |= {digests[n] for n in consts}
        self._shared = {k: v for k, v in self._shared.items() if k in self._live}
        return _Function(inputs, states, consts, ops, list(block.outputs))

    def state_shapes(self, function: str) -> dict[str, tuple[int, ...]]:
        """The function's states and their shapes, read from the spec (nothing is loaded)."""
        if function not in self.spec.mlProgram.functions:
            raise MlxLcError(f"no function {function!r} in the package (has {', '.join(self.functions)})")
        return {v.name: tuple(d.constant.size for d in v.type.stateType.wrappedType.tensorType.dimensions)
                for v in self.spec.mlProgram.functions[function].inputs if v.type.WhichOneof("type") == "stateType"}

    def make_state(self, function: str) -> dict[str, np.ndarray]:
        return {name: np.zeros(shape, np.float16) for name, shape in self.state_shapes(function).items()}

    def run(self, function: str, inputs: dict[str, np.ndarray], state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fn = self._function(function)
        env: dict[str, object] = dict(fn.consts)
        for name, dt in fn.inputs.items():
            env[name] = np.asarray(inputs[name]).astype(dt)
        for op in fn.ops:
            args = {}
            for k, v in op.inputs.items():
                args[k] = [env[x] for x in v] if isinstance(v, list) else v[1] if isinstance(v, tuple) else env[v]
            if op.type == "read_state":
                outs = [np.array(state[args["input"]], copy=True)]
            elif op.type == "write_state":  # coreml_update_state as saved: write, then a read_state
                state[args["input"]] = np.asarray(args["data"]).astype(np.float16)
                outs = []
            else:
                outs = self._op(op.type, op.name, args)
            for (name, dt), val in zip(op.outputs, outs):
                env[name] = np.asarray(val).astype(dt, copy=False)
            for name in op.last_use:  # a prefill's activations are not all held to the end
                env.pop(name, None)
        return {name: env[name] for name in fn.outputs}

    @staticmethod
    def _op(op_type: str, name: str, args: dict) -> list:
        if op_type not in OPS:
            raise MlxLcError(f"the verifier does not know op {op_type!r} (in {name})")
        out = OPS[op_type](args)
        return list(out) if isinstance(out, list) else [out]
