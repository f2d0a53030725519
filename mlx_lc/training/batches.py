"""What `fit` trains on, by default: seeded global batches of `Example`s, collated and sharded
across ranks (`iterate_batches`), and the token cross-entropy on their scored tokens
(`masked_loss`). Both can be replaced, as mlx-lm's trainer takes `loss` and `iterate_batches`."""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..errors import MlxLcError
from .rows import Example


MEGABATCH = 50  # batches per length-sorted group (the factor of Hugging Face's LengthGroupedSampler)


def batch_order(n: int, batch_size: int, seed: int, step: int, lengths: Sequence[int] | None = None) -> np.ndarray:
    """Example indices of global batch `step`: a fresh seeded shuffle each epoch, so any step
    (and so a resumed run) is reproducible without replaying the ones before it.

    With `lengths`, rows are grouped by length the way Hugging Face's `group_by_length` does it:
    the epoch's shuffle is cut into groups of MEGABATCH batches, each group sorted by length and
    cut into batches, and the batches shuffled again. Each batch then pads to a length close to
    its rows' (padding is wasted compute, quadratic in attention), while every epoch still sees
    new batch compositions, unlike mlx-lm's fixed sort of the whole set."""
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    rng = np.random.RandomState((seed * 7919 + epoch) % (2**32))
    perm = rng.permutation(n)
    if lengths is None:
        return perm[i * batch_size:(i + 1) * batch_size]
    used = perm[: per_epoch * batch_size]  # the rows this epoch's full batches take, as without grouping
    lengths = np.asarray(lengths)
    group = MEGABATCH * batch_size
    parts = [g[np.argsort(-lengths[g], kind="stable")] for g in np.split(used, range(group, len(used), group))]
    batches = np.concatenate(parts).reshape(per_epoch, batch_size)
    return batches[rng.permutation(per_epoch)[i]]


def collate(examples: Sequence[Example], max_seq_len: int, pad_to: int = 16):
    """-> inputs, targets (B, L), loss mask (B, L) float32. Length rounds up to `pad_to` so the
    compiled step sees few distinct shapes."""
    seqs = [ids[: max_seq_len + 1] for ids, _ in examples]
    longest = max(len(s) for s in seqs) - 1
    length = max(1, min(max_seq_len, pad_to * math.ceil(longest / pad_to)))
    arr = np.zeros((len(seqs), length + 1), np.int32)
    mask = np.zeros((len(seqs), length), np.float32)
    for j, (s, (_, skip)) in enumerate(zip(seqs, examples)):
        arr[j, : len(s)] = s
        # target position t predicts token t+1: loss on tokens skip .. len(s)-1
        mask[j, max(skip - 1, 0): len(s) - 1] = 1.0
    return mx.array(arr[:, :-1]), mx.array(arr[:, 1:]), mx.array(mask)


def scored_positions(mask: mx.array, pad_to: int = 8) -> mx.array | None:
    """(B, C) indices of each row's scored positions (padded with one of its unscored positions,
    whose mask then zeroes it), or None when most positions are scored anyway (pretraining). With a completion-only loss the
    prompt needs no logits: the vocabulary projection and its softmax, a large part of a tiny
    model's step on CPU, then run on C ~ completion length positions instead of the whole row."""
    m = np.array(mask) > 0
    counts = m.sum(axis=1)
    width = pad_to * math.ceil(max(1, counts.max()) / pad_to)
    if width * 2 > m.shape[1] or m.all(axis=1).any():
        return None
    pos = np.zeros((m.shape[0], width), np.int32)
    for j in range(m.shape[0]):
        idx = np.nonzero(m[j])[0]
        pos[j] = np.nonzero(~m[j])[0][0]
        pos[j, : len(idx)] = idx
    return mx.array(pos)


# Architectures whose __call__ is exactly `lm_head(model.model(x))` (tied or not), so the head
# can run on selected positions only.
_SPLIT_HEAD = ("llama", "qwen2", "qwen3")


def _head(model):
    if getattr(model, "model_type", None) not in _SPLIT_HEAD or not hasattr(model, "model"):
        return None
    if getattr(model.args, "tie_word_embeddings", False):
        return model.model.embed_tokens.as_linear
    return model.lm_head


def masked_loss(model, inputs, targets, mask, norm, pos=None):
    """Sum of token cross-entropies under `mask`, divided by `norm` (see `fit`). `pos` (from
    `scored_positions`) restricts the vocabulary projection to the positions that are scored."""
    head = _head(model) if pos is not None else None
    if head is None:
        logits = model(inputs)
    else:
        h = mx.take_along_axis(model.model(inputs), pos[..., None], axis=1)  # (B, C, D)
        logits = head(h)
        targets, mask = mx.take_along_axis(targets, pos, axis=1), mx.take_along_axis(mask, pos, axis=1)
    ce = nn.losses.cross_entropy(logits.astype(mx.float32), targets) * mask
    return ce.sum() / norm


def shard(batch: Sequence, rank: int, size: int) -> list:
    """This rank's rows of a global batch (strided, like mlx-lm's iterate_batches)."""
    return list(batch[rank::size])


def scored_tokens(example: Example, max_seq_len: int) -> int:
    """Tokens of `example` the loss covers once `collate` cuts it at max_seq_len + 1 tokens."""
    ids, skip = example
    return max(0, min(len(ids), max_seq_len + 1) - max(skip, 1))


def row_counts(examples: Sequence[Example], max_seq_len: int) -> dict:
    """rows; cut (longer than a training window); unscored (no loss token left after the cut)."""
    return {"rows": len(examples), "cut": sum(len(ids) > max_seq_len + 1 for ids, _ in examples),
            "unscored": sum(scored_tokens(e, max_seq_len) == 0 for e in examples)}


def check_rows(train: Sequence[Example], valid: Sequence[Example], max_seq_len: int) -> dict:
    """Row counts of both splits; refuses a split the loss sees none of. A row whose completion
    lies beyond max_seq_len adds nothing to the loss: with every row so, training would
    "succeed" at loss 0 and change nothing, and a dev loss of 0 would pick any weights."""
    counts = {"train": row_counts(train, max_seq_len), "valid": row_counts(valid, max_seq_len), "max_seq_len": max_seq_len}
    for split, name in (("train", "training"), ("valid", "dev")):
        c = counts[split]
        if c["rows"] and c["unscored"] == c["rows"]:
            rows = train if split == "train" else valid
            shortest = min(skip for _, skip in rows)
            raise MlxLcError(f"none of the {c['rows']} {name} rows has a completion token within max_seq_len "
                             f"{max_seq_len} (the shortest prompt has {shortest} tokens): nothing to "
                             f"{'train' if split == 'train' else 'measure'} on; raise max_seq_len or shorten the prompts",
                             mentions=("max_seq_len",))
    return counts


def cut_note(counts: dict) -> str | None:
    """The one line that says how many rows were cut at max_seq_len, or None when none was."""
    cut = counts["train"]["cut"] + counts["valid"]["cut"]
    if not cut:
        return None
    rows = counts["train"]["rows"] + counts["valid"]["rows"]
    lost = counts["train"]["unscored"] + counts["valid"]["unscored"]
    verb = "has" if lost == 1 else "have"
    tail = f"; {lost} of them {verb} no completion token left and add{'s' if lost == 1 else ''} no loss" if lost else ""
    return f"{cut} of {rows} rows were cut at the maximum sequence length ({counts['max_seq_len']} tokens){tail}"


def evaluate_loss(model, examples: Sequence[Example], batch_size: int, max_seq_len: int, group,
                  loss: Callable = masked_loss) -> float:
    """Mean token loss over `examples`, sharded across ranks and summed."""
    total, count = mx.array(0.0), mx.array(0.0)
    rank, size = group.rank(), group.size()
    for i in range(0, len(examples), batch_size):
        part = shard(examples[i:i + batch_size], rank, size)
        if not part:
            continue
        x, y, m = collate(part, max_seq_len)
        total = total + loss(model, x, y, m, 1.0, scored_positions(m))
        count = count + m.sum()
        mx.eval(total, count)
    if size > 1:
        total, count = mx.distributed.all_sum(total, stream=mx.cpu), mx.distributed.all_sum(count, stream=mx.cpu)
    return (total / mx.maximum(count, 1.0)).item()


def iterate_batches(examples: Sequence[Example], cfg, start: int = 0, group=None) -> Iterator[tuple[tuple, int]]:
    """From global step `start` on, without end: (loss arguments, tokens) for each step, where the
    loss arguments are this rank's rows of the step's global batch (`batch_order`) collated as
    (inputs, targets, mask, norm, positions) and tokens counts the whole global batch's.

    `norm` is the global batch's scored-token count over the number of ranks: each rank's loss
    is then its share of the global mean, and averaging the ranks' gradients gives exactly the
    gradient one process would compute on the whole batch. `cfg` is a FitConfig."""
    group = group or mx.distributed.init()
    rank, size = group.rank(), group.size()
    lengths = [len(ids) for ids, _ in examples] if cfg.group_by_length else None
    step = start
    while True:
        batch = [examples[i] for i in batch_order(len(examples), cfg.batch_size, cfg.seed, step, lengths)]
        global_count = sum(scored_tokens(e, cfg.max_seq_len) for e in batch)
        x, y, m = collate(shard(batch, rank, size), cfg.max_seq_len)
        norm = mx.array(max(global_count, 1) / size, mx.float32)
        yield (x, y, m, norm, scored_positions(m)), sum(min(len(ids), cfg.max_seq_len + 1) - 1 for ids, _ in batch)
        step += 1
