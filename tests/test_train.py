"""train-lora and pretrain on tiny models: completion-only loss, mlx-lm-compatible output,
early stopping on the dev split, exact resume, one-line errors."""

import mlx_lc  # noqa: F401

import json

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from click.testing import CliRunner
from mlx.utils import tree_flatten

from mlx_lc import adapters, model_folder
from mlx_lc.training.batches import batch_order, collate, iterate_batches, masked_loss
from mlx_lc.cli import main
from mlx_lc.errors import MlxLcError
from mlx_lc.training.fit import FitConfig, fit
from mlx_lc.training.rows import encode_rows, load_splits
from mlx_lc.training.train import LoRAConfig, add_lora, train_lora

import toy_data


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def sum_data(tmp_path_factory):
    return toy_data.write(tmp_path_factory.mktemp("data") / "summarize", "summarize")


def test_loss_mask_covers_completion_and_eos_only(tiny_model):
    _, tok = tiny_model
    rows = [toy_data.row("summarize", i) for i in range(3)]
    examples = encode_rows(tok, rows)
    _, targets, mask = collate(examples, max_seq_len=512)
    for j, (row, (ids, n_prompt)) in enumerate(zip(rows, examples)):
        completion = tok.encode(row["completion"], add_special_tokens=False) + [tok.eos_token_id]
        assert ids[n_prompt:] == completion
        assert np.array(targets[j])[np.array(mask[j]) > 0].tolist() == completion  # exactly the completion is scored


def test_train_lora_cli_writes_an_mlx_lm_adapter(tmp_path, tiny_path, tiny_model, sum_data):
    out = tmp_path / "sum_lora"
    res = run("train-lora", "-m", tiny_path, "-d", sum_data, "-o", out, "--rank", 4, "--alpha", 16, "--dropout", 0,
              "--lr", 3e-3, "--iters", 30, "--batch-size", 8, "--eval-every", 10, "-q")
    assert "best dev loss" in res.output
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["lora_parameters"]["scale"] == 4.0  # alpha / rank
    assert cfg["mlx_lc"]["base_arch"] == adapters.model_arch(tiny_model[0])
    assert cfg["mlx_lc"]["train"]["fit"]["lr"] == 3e-3 and cfg["mlx_lc"]["train"]["n_train"] == 64
    assert len(cfg["lora_parameters"]["keys"]) == 7  # q k v o gate up down
    hist = json.loads((out / "history.json").read_text())
    assert hist["valid"][-1][1] < hist["valid"][0][1] - 0.3, hist["valid"]  # it learned something
    assert (out / "loss.png").stat().st_size > 1000

    # mlx-lm's own loader accepts the folder and the adapter changes the output
    model, _ = mlx_lm.load(str(tiny_path), adapter_path=str(out))
    base, _ = mlx_lm.load(str(tiny_path))
    x = mx.array([[1, 40, 41, 42, 43]])
    assert not mx.allclose(model(x), base(x), atol=1e-4)


def test_lora_defaults_follow_the_paper():
    cfg = LoRAConfig()
    assert (cfg.rank, cfg.scale, cfg.dropout, cfg.fit.lr) == (32, 0.5, 0.05, 5e-5)


def _weights(path):
    return mx.load(str(path / "adapters.safetensors"))


@pytest.mark.parametrize("grouped", [False, True])
def test_resume_continues_exactly(tmp_path, tiny_path, sum_data, grouped):
    def cfg(iters):
        return LoRAConfig(rank=4, scale=1.0, dropout=0.0, fit=FitConfig(lr=2e-3, batch_size=8, iters=iters, eval_every=5,
                                                                        group_by_length=grouped))

    train_lora(str(tiny_path), sum_data, tmp_path / "straight", cfg(20), progress=False)
    train_lora(str(tiny_path), sum_data, tmp_path / "split", cfg(10), progress=False)
    r = train_lora(str(tiny_path), sum_data, tmp_path / "split", cfg(20), resume=True, progress=False)
    assert r.steps == 20
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(np.array(a[k]), np.array(b[k]), rtol=1e-5, atol=1e-6)


def test_early_stopping_keeps_the_best_dev_weights(tmp_path, tiny_path, sum_data):
    cfg = LoRAConfig(rank=4, scale=1.0, dropout=0.0,
                     fit=FitConfig(lr=0.5, batch_size=8, iters=200, eval_every=3, patience=2))
    r = train_lora(str(tiny_path), sum_data, tmp_path / "lora", cfg, progress=False)  # lr far too high: diverges
    vals = [v for _, v in r.history["valid"]]
    assert r.stopped_early and r.steps < 200
    assert r.best_val == min(vals) and r.best_step < r.steps
    best = mx.load(str(tmp_path / "lora" / "checkpoint" / "best.safetensors"))
    written = _weights(tmp_path / "lora")
    for k, v in best.items():
        assert mx.array_equal(v, written[k])


def test_bad_data_is_one_line(tmp_path, tiny_path, sum_data):
    res = run("train-lora", "-m", tiny_path, "-d", tmp_path / "nope.jsonl", "-o", tmp_path / "o", ok=False)
    assert res.exit_code == 1 and "data file not found" in res.output and "Traceback" not in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{oops\n')
    res = run("train-lora", "-m", tiny_path, "-d", bad, "-o", tmp_path / "o", ok=False)
    assert res.exit_code == 1 and "train.jsonl:2: not JSON" in res.output
    assert not (tmp_path / "o" / "adapters.safetensors").exists()


def test_pretrain_trains_every_weight(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"{toy_data.row('summarize', i)['input']}\n{toy_data.row('es', i)['completion']}"
                                  for i in range(150)))
    out = tmp_path / "base"
    run("pretrain", "-c", corpus, "-o", out, "--hidden", 32, "--layers", 2, "--vocab", 400, "--heads", 2,
        "--kv-heads", 1, "--iters", 40, "--batch-size", 8, "--max-seq-len", 64, "--lr", 1e-2, "-q")
    info = json.loads((out / "pretrain.json").read_text())
    hist = json.loads((out / "history.json").read_text())
    assert hist["valid"][-1][1] < hist["valid"][0][1] - 1.0, hist["valid"]
    assert info["result"]["steps"] == 40 and (out / "loss.png").exists()
    # every tensor moved away from its random init
    from mlx_lc.tiny import TinyConfig, write_tiny_model

    init = write_tiny_model(tmp_path / "init", TinyConfig(hidden=32, layers=2, vocab=400, heads=2, kv_heads=1),
                            corpus.read_text().splitlines())
    before, after = mx.load(str(init / "model.safetensors")), mx.load(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    unchanged = [k for k in before if mx.array_equal(before[k], after[k])]
    assert not unchanged, unchanged
    mlx_lm.load(str(out))  # still a loadable model


def test_corpus_windows_keep_documents_whole(tiny_model):
    """Pretraining windows never cut a document that fits in one, and lose no token."""
    from mlx_lc.training.pretrain import corpus_examples

    _, tok = tiny_model
    docs = [toy_data.row("summarize", i)["input"] for i in range(40)] + ["word " * 150]  # the last one: too long
    windows = corpus_examples(tok, "\n\n".join(docs), 64)
    assert all(len(ids) <= 65 for ids, _ in windows)
    eos = tok.eos_token_id
    stream = [t for ids, _ in windows for t in ids]
    encoded = [tok.encode(d.strip(), add_special_tokens=False) + [eos] for d in docs]
    assert stream == [t for ids in encoded for t in ids]
    fits = [ids for ids in encoded if len(ids) <= 65]
    assert len(fits) == 40  # every dialogue fits, so each lies inside exactly one window
    for ids in fits:
        assert any(any(w[i:i + len(ids)] == ids for i in range(len(w) - len(ids) + 1)) for w, _ in windows)


def test_loss_on_scored_positions_equals_full_logits(tiny_model):
    from mlx_lc.training.batches import masked_loss, scored_positions

    model, tok = tiny_model
    x, y, m = collate(encode_rows(tok, [toy_data.row("summarize", i) for i in range(4)]), 512)
    pos = scored_positions(m)
    assert pos is not None and pos.shape[1] < x.shape[1] / 2
    full, gathered = masked_loss(model, x, y, m, m.sum()), masked_loss(model, x, y, m, m.sum(), pos)
    assert abs(full.item() - gathered.item()) < 1e-5 and full.item() > 0


@pytest.mark.parametrize("n,batch", [(2400, 16), (1000, 8), (37, 4)])
def test_length_grouped_batches_are_a_reshuffle_of_the_same_rows_with_less_padding(n, batch):
    lengths = np.random.RandomState(1).randint(60, 230, n)
    per_epoch = n // batch
    for epoch in range(3):
        steps = range(epoch * per_epoch, (epoch + 1) * per_epoch)
        plain = [batch_order(n, batch, 0, s) for s in steps]
        grouped = [batch_order(n, batch, 0, s, lengths) for s in steps]
        assert all(len(b) == batch for b in grouped)
        # the same rows as the ungrouped epoch (the last n % batch sit out alike), each once
        assert sorted(np.concatenate(grouped)) == sorted(np.concatenate(plain))
        assert [list(b) for b in grouped] == [list(batch_order(n, batch, 0, s, lengths)) for s in steps]
    if n >= 1000:  # with few rows a group is the whole set: still sorted, less padding
        epoch1 = [batch_order(n, batch, 0, per_epoch + i, lengths) for i in range(per_epoch)]
        assert {tuple(sorted(b)) for b in epoch1} != {tuple(sorted(b)) for b in grouped}  # new batches each epoch
    padded = lambda bs: sum(len(b) * lengths[b].max() for b in bs)  # noqa: E731
    assert padded(grouped) < 0.9 * padded(plain)


def test_group_by_length_flag_reaches_the_run_and_its_record(tmp_path, tiny_path, sum_data):
    out = tmp_path / "grouped"
    run("train-lora", "-m", tiny_path, "-d", sum_data, "-o", out, "--rank", 4, "--iters", 4, "--batch-size", 8,
        "--group-by-length", "-q")
    assert json.loads((out / "adapter_config.json").read_text())["mlx_lc"]["train"]["fit"]["group_by_length"] is True


def test_resume_refuses_a_changed_batching(tmp_path, tiny_path, sum_data):
    fit = FitConfig(lr=2e-3, batch_size=8, iters=4, eval_every=2)
    train_lora(str(tiny_path), sum_data, tmp_path / "a", LoRAConfig(rank=4, fit=fit), progress=False)
    grouped = LoRAConfig(rank=4, fit=FitConfig(lr=2e-3, batch_size=8, iters=8, eval_every=2, group_by_length=True))
    with pytest.raises(MlxLcError, match="group_by_length False -> True"):
        train_lora(str(tiny_path), sum_data, tmp_path / "a", grouped, resume=True, progress=False)


def _lora_fit(tiny_path, data, **kw):
    """A fresh LoRA trained 6 steps without a dev split (so the last weights are kept); ->
    (initial weights, trained weights, result)."""
    model, tok = model_folder.load(tiny_path)
    mx.random.seed(0)
    add_lora(model, LoRAConfig(rank=4, dropout=0.0))
    start = {k: mx.array(v) for k, v in tree_flatten(model.trainable_parameters())}
    train_rows, _ = load_splits(data)
    result = fit(model, encode_rows(tok, train_rows), [], FitConfig(lr=3e-3, iters=6, batch_size=4), progress=False, **kw)
    return start, dict(tree_flatten(model.trainable_parameters())), result


def test_fit_trains_with_the_loss_and_batches_it_is_given(tiny_path, sum_data):
    start, want, plain = _lora_fit(tiny_path, sum_data)
    calls = {"loss": 0, "batches": 0, "starts": []}

    def loss(*args):
        calls["loss"] += 1  # at each trace of the compiled step, not at each step
        return masked_loss(*args)

    def batches(examples, cfg, start, group):
        calls["starts"].append(start)
        for item in iterate_batches(examples, cfg, start, group):
            calls["batches"] += 1
            yield item

    _, got, wrapped = _lora_fit(tiny_path, sum_data, loss=loss, iterate_batches=batches)
    assert calls["loss"] >= 1 and calls["starts"] == [0] and calls["batches"] == wrapped.steps == 6
    assert [r[:2] for r in wrapped.history["train"]] == [r[:2] for r in plain.history["train"]]  # step, loss
    assert all(mx.array_equal(want[k], got[k]).item() for k in want)  # the wrapped defaults are the defaults
    assert not all(mx.array_equal(start[k], want[k]).item() for k in want)

    # a loss of zero gives zero gradients, and Adam then moves no weight
    _, frozen, zero = _lora_fit(tiny_path, sum_data, loss=lambda *args: 0 * masked_loss(*args))
    assert all(mx.array_equal(start[k], frozen[k]).item() for k in start)
    assert [row[1] for row in zero.history["train"]] == [0.0] * len(zero.history["train"])
