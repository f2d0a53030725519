"""The golden files the Swift tests read are current, and the reference sampler behind them is right."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import mlx_lc  # noqa: F401  (OpenBLAS before mlx)
from mlx_lc.ios.golden import DEFAULT_OUT, write_golden
from mlx_lc.ios.sampler import SamplingConfig, SplitMix64, argmax, sample, sample_sequence


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _compare(fresh: dict[str, bytes], committed: dict[str, bytes]) -> None:
    assert sorted(fresh) == sorted(committed), "golden file set changed: run python scripts/ios_golden.py"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale golden files {stale}: run python scripts/ios_golden.py"


def test_golden_files_derived_from_the_tokenizers_are_current(tmp_path):
    """Prompts, ids, decodes, manifest and sampler cases, recomputed from the committed tokenizer
    files with the installed Python stack."""
    fresh = _files(write_golden(tmp_path / "golden", reuse_tokenizers=DEFAULT_OUT))
    _compare(fresh, _files(DEFAULT_OUT))
    manifest = json.loads(fresh["manifest.json"])
    prompts = json.loads(fresh["prompts.json"])
    assert len(manifest["compositions"]) == 14
    assert len(prompts["cases"]) == 14 * len(prompts["conversations"])
    tokens = json.loads(fresh["tokens.json"])
    assert set(tokens) == {"main", "llama3", "spm", "metaspace", "qwen2"}


def test_golden_tokenizers_retrain_identically(tmp_path):
    """Training (and transformers' save_pretrained) is deterministic for given releases; with
    others the tokenizer files may legitimately differ, so this runs only with the recorded ones."""
    from mlx_lc.ios.golden import stack_versions

    recorded = json.loads((DEFAULT_OUT / "versions.json").read_text())
    if stack_versions() != recorded:
        pytest.skip(f"golden tokenizers were trained with {recorded}, this is {stack_versions()}")
    _compare(_files(write_golden(tmp_path / "golden")), _files(DEFAULT_OUT))


def test_splitmix64_reference_values():
    rng = SplitMix64(0)  # published first outputs for seed 0
    assert [rng.next_u64() for _ in range(2)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]
    rng = SplitMix64(2**64 + 5)  # seeds wrap to 64 bits
    assert rng.next_u64() == SplitMix64(5).next_u64()
    draws = [SplitMix64(7).next_double() for _ in range(3)]
    assert all(0.0 <= d < 1.0 for d in draws)


def test_greedy_is_argmax_and_draws_nothing():
    rng = SplitMix64(3)
    logits = [0.5, 2.0, 2.0, -1.0]
    assert sample(logits, 0.0, 1.0, rng) == 1 == argmax(logits)  # lowest index on ties
    assert rng.state == SplitMix64(3).state


def test_temperature_sampling_follows_softmax():
    logits = [1.0, 0.0, -1.0, 2.0]
    rng = SplitMix64(11)
    n = 20000
    counts = [0] * 4
    for _ in range(n):
        counts[sample(logits, 1.0, 1.0, rng)] += 1
    z = sum(math.exp(v) for v in logits)
    for c, v in zip(counts, logits):
        p = math.exp(v) / z
        assert abs(c / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_top_p_keeps_only_the_nucleus():
    logits = [3.0, 2.9, 0.0, -2.0, 1.0]  # probs ~ .50 .45 .02 .00 .04
    rng = SplitMix64(5)
    picked = {sample(logits, 1.0, 0.9, rng) for _ in range(2000)}
    assert picked == {0, 1}
    assert {sample(logits, 1.0, 0.01, rng) for _ in range(200)} == {0}


def test_sequences_are_reproducible_and_seed_dependent():
    rows = [[math.sin(i * 0.7 + j) * 3 for j in range(50)] for i in range(30)]
    a = sample_sequence(rows, SamplingConfig(1.0, 0.95, 1))
    assert a == sample_sequence(rows, SamplingConfig(1.0, 0.95, 1))
    assert a != sample_sequence(rows, SamplingConfig(1.0, 0.95, 2))


def test_golden_sampler_cases_replay():
    golden = json.loads((DEFAULT_OUT / "sampler.json").read_text())
    for case in golden["cases"]:
        cfg = SamplingConfig(case["temperature"], case["top_p"], int(case["seed"]))
        assert sample_sequence(golden["logits"], cfg) == case["tokens"]
