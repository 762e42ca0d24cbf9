"""NAS-Bench-101 without TensorFlow: hash, enumeration, reader, cache, space, benchmark.

Tests that need the enumerated pool use the cached copy in $LANAS_CACHE (~/.cache/lanas); on a
machine without it the first such test builds it once (about 20 s of CPU on two cores).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanas.app import run
from lanas.benchmarks.nasbench101 import NASBench101Benchmark
from lanas.errors import BenchmarkDataError, ConfigError, InvalidArchitectureError
from lanas.nasbench101 import download, table as nbtable
from lanas.nasbench101.enumerate import NUM_CELLS, enumerate_cells, load_pool
from lanas.nasbench101.metrics import ModelMetrics
from lanas.nasbench101.spec import OPS, canonical_cell, hash_module, labels_of, prune, spec_hash
from lanas.nasbench101.tfrecord import crc32c, crc32c_rows, read_records, write_records
from lanas.spaces.nasbench101 import NASBench101Space
from lanas.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
NAMES = {-1: "input", -2: "output", 0: OPS[0], 1: OPS[1], 2: OPS[2]}


def crc32c_bitwise(data: bytes) -> int:
    """Textbook bit-at-a-time CRC32C, the reference for the table-driven one."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


@pytest.fixture(scope="module")
def space() -> NASBench101Space:
    return NASBench101Space()


@pytest.fixture
def tfrecords(shared_data) -> Path:
    return shared_data / "nb101-tfrecord"


def small_file(path: Path, n: int = 6) -> Path:
    """A few official-format records for real cells (accuracies made up)."""
    pool = load_pool()
    payloads = []
    for c in range(n):
        metrics = ModelMetrics(trainable_parameters=1000 + c, total_time=1.5)
        for epoch in (0.0, 54.0, 108.0):
            metrics.evaluation_data.add(current_epoch=epoch, training_time=epoch, train_accuracy=0.5,
                                        validation_accuracy=0.5 + c / 100, test_accuracy=0.25 + c / 100)
        raw = base64.encodebytes(metrics.SerializeToString()).decode()
        payloads.append(json.dumps([pool.hashes[c].decode(), 108, "0", "input,output", raw]).encode())
    write_records(path, payloads)
    return path


# --- CRC32C and framing -------------------------------------------------------------------

def test_crc32c_matches_the_bitwise_definition():
    rng = np.random.default_rng(0)
    assert crc32c(b"123456789") == crc32c_bitwise(b"123456789") == 0xE3069283  # RFC 3720 check value
    for length in (0, 1, 3, 4, 5, 31, 64, 333):
        data = rng.integers(0, 256, size=length, dtype=np.uint8).tobytes()
        assert crc32c(data) == crc32c_bitwise(data)
    rows = rng.integers(0, 256, size=(7, 21), dtype=np.uint8)
    assert crc32c_rows(rows).tolist() == [crc32c_bitwise(r.tobytes()) for r in rows]


def test_framing_round_trip(tmp_path):
    payloads = [os.urandom(n) for n in (0, 1, 5, 100, 4000)] * 3
    write_records(tmp_path / "x.tfrecord", payloads)
    batches = list(read_records(tmp_path / "x.tfrecord", chunk_bytes=700))  # records straddle chunks
    assert [p for b in batches for p in b.payloads] == payloads
    offsets = np.concatenate([b.offsets for b in batches])
    assert offsets[0] == 0 and np.all(np.diff(offsets) == [16 + len(p) for p in payloads[:-1]])


# --- the official hash and the model spec -------------------------------------------------

def test_hash_matches_the_official_table_on_1000_real_cells(shared_data):
    data = json.loads((shared_data / "nb101-subset" / "data-1k.json").read_text())
    assert len(data["key"]) == 1000
    for adjacency, operations, key in zip(data["adjacency"], data["operations"], data["key"]):
        ops = [NAMES[o] for o in operations if o != -3]
        matrix = np.array(adjacency, dtype=np.int8)[: len(ops), : len(ops)]
        assert spec_hash(matrix, ops) == key


def test_pruning_and_validity_like_the_official_model_spec():
    # Vertex 2 hangs (no path to output), vertex 3 is unreachable from input: both are pruned.
    matrix = np.zeros((6, 6), dtype=np.int8)
    matrix[0, 1] = matrix[1, 5] = matrix[0, 2] = matrix[3, 4] = matrix[4, 5] = 1
    ops = ["input", OPS[0], OPS[1], OPS[2], OPS[0], "output"]
    small, small_ops = prune(matrix, ops)
    assert small.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert small_ops == ["input", OPS[0], "output"]
    assert prune(np.zeros((3, 3), dtype=np.int8), ["input", OPS[0], "output"]) is None
    with pytest.raises(InvalidArchitectureError, match="no path"):
        canonical_cell(np.zeros((3, 3), dtype=np.int8), ["input", OPS[0], "output"])
    chain8 = np.eye(8, k=1, dtype=np.int8)
    with pytest.raises(InvalidArchitectureError, match="8 vertices"):
        canonical_cell(chain8, ["input"] + [OPS[0]] * 6 + ["output"])
    dense = np.triu(np.ones((6, 6), dtype=np.int8), k=1)  # 15 edges
    with pytest.raises(InvalidArchitectureError, match="15 edges"):
        canonical_cell(dense, ["input"] + [OPS[0]] * 4 + ["output"])
    with pytest.raises(InvalidArchitectureError, match="conv5x5"):
        canonical_cell(np.eye(3, k=1, dtype=np.int8), ["input", "conv5x5", "output"])
    with pytest.raises(InvalidArchitectureError, match="upper triangular"):
        canonical_cell(np.eye(3, k=-1, dtype=np.int8), ["input", OPS[0], "output"])


cells = st.tuples(
    st.lists(st.booleans(), min_size=21, max_size=21),
    st.lists(st.sampled_from(OPS), min_size=5, max_size=5),
    st.permutations(range(1, 6)),
)


def raw_cell(bits: list[bool], ops: list[str]) -> tuple[np.ndarray, list[str]]:
    matrix = np.zeros((7, 7), dtype=np.int8)
    matrix[np.triu_indices(7, k=1)] = bits
    return matrix, ["input", *ops, "output"]


@settings(max_examples=60, deadline=None)
@given(cells)
def test_hash_is_invariant_under_vertex_permutation(cell):
    bits, ops, perm = cell
    matrix, names = raw_cell(bits, ops)
    pruned = prune(matrix, names)
    if pruned is None:
        return
    small, small_ops = pruned
    labels = labels_of(small_ops)
    n = len(labels)
    order = [0, *[p for p in np.argsort(perm) + 1 if p < n - 1], n - 1]  # relabel interior vertices
    shuffled = small[np.ix_(order, order)]
    assert hash_module(shuffled, [labels[i] for i in order]) == hash_module(small, labels)


# --- enumeration ----------------------------------------------------------------------------

def brute_force_hashes(max_vertices: int) -> set[str]:
    """The official generator: hash every labelled full DAG, keep distinct hashes."""
    found = set()
    for n in range(2, max_vertices + 1):
        pairs = [(r, c) for r in range(n) for c in range(r + 1, n)]
        for bits in itertools.product((0, 1), repeat=len(pairs)):
            matrix = np.zeros((n, n), dtype=np.int8)
            for (r, c), b in zip(pairs, bits):
                matrix[r, c] = b
            full = all(matrix[v].any() for v in range(n - 1)) and all(matrix[:, v].any() for v in range(1, n))
            if not full or matrix.sum() > 9:
                continue
            for labeling in itertools.product(range(3), repeat=n - 2):
                found.add(hash_module(matrix, [-1, *labeling, -2]))
    return found


def test_enumeration_equals_the_brute_force_generator_up_to_5_vertices():
    pool = enumerate_cells(workers=1, max_vertices=5)
    assert len(pool) == len(set(pool.hashes.tolist()))
    assert {h.decode() for h in pool.hashes} == brute_force_hashes(5)
    assert np.array_equal(pool.hashes, np.sort(pool.hashes))


def test_pool_has_every_cell_once(space):
    pool = load_pool()
    assert len(pool) == NUM_CELLS == 423_624
    assert len(np.unique(pool.hashes)) == NUM_CELLS
    assert pool.num_vertices.min() == 2 and pool.num_vertices.max() == 7
    # Each stored cell really has the hash it is filed under (a sample of them).
    for arch in np.random.default_rng(1).integers(len(space), size=200):
        matrix, ops = space.cell(int(arch))
        assert spec_hash(matrix, ops) == space.arch_id(int(arch))


@pytest.mark.slow
def test_enumeration_from_scratch_gives_423624_cells():
    pool = enumerate_cells()
    assert len(pool) == 423_624 == len(np.unique(pool.hashes))
    cached = load_pool()
    assert np.array_equal(pool.hashes, cached.hashes) and np.array_equal(pool.ops, cached.ops)


# --- the real official-format files -------------------------------------------------------

def test_real_tfrecords_parse_with_the_expected_counts_and_ranges(tfrecords, tmp_path):
    four = nbtable.load_table(tfrecords / "energy_4V9E.tfrecord", cache=tmp_path)
    assert len(four.hashes) == 91 and four.epochs.tolist() == [4, 12, 36, 108]
    for name, column in four.columns.items():
        assert column.shape == (91, 4, 3) and not np.isnan(column).any(), name
    for name in ("final_train_accuracy", "final_validation_accuracy", "final_test_accuracy"):
        assert np.all((four.columns[name] >= 0) & (four.columns[name] <= 1))
    assert np.array_equal(four.column("final_epoch", 108), np.full((91, 3), 108.0))
    val, test = four.column("final_validation_accuracy", 108), four.column("final_test_accuracy", 108)
    assert 0.85 < val.mean() < 0.95 and 0.85 < test.mean() < 0.95
    assert test.mean() < val.mean() <= val.max() < 0.95
    assert np.all(four.trainable_parameters > 0)
    five = nbtable.load_table(tfrecords / "energy_5V9E.tfrecord", cache=tmp_path)
    assert len(five.hashes) == 2532 and five.epochs.tolist() == [4]
    assert five.columns["final_test_accuracy"].shape == (2532, 1, 1)
    # Cell counts: every cell with <= 4 (<= 5) vertices, found in the enumerated pool.
    pool = load_pool()
    for tab, size in ((four, 4), (five, 5)):
        positions = pool.find(tab.hashes)
        assert np.all(positions >= 0)
        assert np.all(pool.num_vertices[positions] <= size)
        assert len(tab.hashes) == np.sum(pool.num_vertices <= size)


def test_records_carry_graphs_that_hash_to_their_key(tfrecords):
    seen = 0
    for batch in read_records(tfrecords / "energy_4V9E.tfrecord"):
        for payload in batch.payloads[::12]:
            module_hash, epochs, adjacency, operations, raw = json.loads(payload)
            n = int(round(len(adjacency) ** 0.5))
            matrix = np.array([int(c) for c in adjacency], dtype=np.int8).reshape(n, n)
            assert spec_hash(matrix, operations.split(",")) == module_hash
            metrics = ModelMetrics.FromString(base64.b64decode(raw))
            assert len(metrics.evaluation_data) == 3 and metrics.evaluation_data[-1].current_epoch == epochs
            seen += 1
    assert seen == 1092 // 12


def test_cache_is_reused_and_refreshed_when_the_source_changes(tfrecords, tmp_path, monkeypatch):
    source = tmp_path / "four.tfrecord"
    shutil.copy(tfrecords / "energy_4V9E.tfrecord", source)
    first = nbtable.load_table(source, cache=tmp_path / "cache")
    assert nbtable.cache_file(source, tmp_path / "cache").is_file()
    calls = []
    real = nbtable.convert_tfrecord
    monkeypatch.setattr(nbtable, "convert_tfrecord", lambda p: calls.append(p) or real(p))
    again = nbtable.load_table(source, cache=tmp_path / "cache")
    assert calls == []
    for name in first.columns:
        assert np.array_equal(first.columns[name], again.columns[name], equal_nan=True)
    os.utime(source, ns=(1, 1))
    nbtable.load_table(source, cache=tmp_path / "cache")
    assert calls == [source]


def corrupt_cases(tfrecords: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    data = (tfrecords / "energy_4V9E.tfrecord").read_bytes()
    first_len = int.from_bytes(data[:8], "little")
    second = 16 + first_len  # offset of record 1
    cases = {}
    cut = tmp_path / "truncated.tfrecord"
    cut.write_bytes(data[: second + 100])
    cases["truncated"] = (cut, f"record 1 at byte offset {second} is truncated")
    flipped = bytearray(data)
    flipped[second + 40] ^= 0x01
    flip = tmp_path / "flipped.tfrecord"
    flip.write_bytes(bytes(flipped))
    cases["flipped"] = (flip, f"record 1 at byte offset {second} is corrupt \\(CRC32C mismatch of its data\\)")
    bad_json = tmp_path / "badjson.tfrecord"
    write_records(bad_json, [data[12:12 + first_len], b'{"not": "a list"}'])
    cases["json"] = (bad_json, f"record 1 at byte offset {second}: .*not the expected JSON.*not a list of 5")
    bad_proto = tmp_path / "badproto.tfrecord"
    write_records(bad_proto, [json.dumps(["0" * 32, 108, "0", "input,output", "////"]).encode()])
    cases["protobuf"] = (bad_proto, "record 0 at byte offset 0: .*not the expected JSON")
    unknown = tmp_path / "unknown.tfrecord"
    record = json.loads(data[12:12 + first_len])
    write_records(unknown, [data[12:12 + first_len], json.dumps(["f" * 32, *record[1:]]).encode()])
    cases["unknown hash"] = (unknown, f"record 1 at byte offset {second}: .*{'f' * 32} is not a NAS-Bench-101 cell")
    cases["missing"] = (tmp_path / "nope.tfrecord", "nope.tfrecord does not exist")
    return cases


@pytest.mark.parametrize("case", ["truncated", "flipped", "json", "protobuf", "unknown hash", "missing"])
def test_corrupt_files_fail_clearly_and_leave_no_cache(tfrecords, tmp_path, case):
    path, message = corrupt_cases(tfrecords, tmp_path)[case]
    cache = tmp_path / "cache"
    with pytest.raises(BenchmarkDataError, match=message) as info:
        nbtable.load_table(path, cache=cache)
    assert str(path) in str(info.value)
    assert not cache.exists() or list(cache.iterdir()) == []


# --- the search space -----------------------------------------------------------------------

def test_encoding_is_edge_bits_and_one_hot_ops(space):
    X = space.features()
    assert X.shape == (423_624, 36) and not X.flags.writeable
    onehot = X[:, 21:].reshape(-1, 5, 3)
    assert set(np.unique(onehot.sum(axis=2))) == {0.0, 1.0}
    for arch in np.random.default_rng(2).integers(len(space), size=100):
        matrix, ops = space.cell(int(arch))
        row = X[int(arch)]
        assert row[:21].sum() == matrix.sum()
        assert onehot[int(arch)].sum() == len(ops) - 2
        assert sorted(OPS[i] for i in onehot[int(arch)].argmax(axis=1)[onehot[int(arch)].sum(axis=1) == 1]) == \
            sorted(ops[1:-1])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 423_623))
def test_string_round_trip(space, arch):
    text = space.to_string(arch)
    assert space.from_string(text) == arch
    assert space.from_string(space.arch_id(arch)) == arch


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 423_623), st.integers(0, 2**32 - 1))
def test_mutation_gives_a_different_valid_cell_of_the_space(space, arch, seed):
    child = space.mutate(arch, np.random.default_rng(seed))
    assert child != arch and 0 <= child < len(space)
    matrix, ops = space.cell(child)
    assert spec_hash(matrix, ops) == space.arch_id(child)


def test_unpruned_and_isomorphic_strings_name_the_same_cell(space):
    # input -> conv3x3 -> output, plus a dangling maxpool (pruned) and vertices in another order.
    a = space.from_string("010001000|input,conv3x3-bn-relu,output")
    b = space.from_string("0110000000010000|input,maxpool3x3,conv3x3-bn-relu,output")
    assert a == b
    assert space.to_string(a) == "010001000|input,conv3x3-bn-relu,output"


@pytest.mark.parametrize("text", ["", "0101|input,output", "01|input,output", "010001000|input,conv9x9,output",
                                  "000000000|input,conv3x3-bn-relu,output", "f" * 32])
def test_bad_strings_are_rejected(space, text):
    with pytest.raises(InvalidArchitectureError, match="NAS-Bench-101|not in"):
        space.from_string(text)


def test_restricted_space_and_pickling(space):
    sub = space.restrict(np.arange(0, 423_624, 50))
    assert len(sub) == 8473 and sub.features().shape == (8473, 36)
    rng = np.random.default_rng(3)
    child = sub.mutate(5, rng)
    assert child != 5 and sub.arch_id(child) == space.arch_id(int(sub.positions[child]))
    with pytest.raises(InvalidArchitectureError, match="not in the benchmark"):
        sub.from_string(space.arch_id(1))
    clone = pickle.loads(pickle.dumps(sub))
    assert len(pickle.dumps(space)) < 1000
    assert clone.to_string(7) == sub.to_string(7)


# --- the benchmark ----------------------------------------------------------------------

def test_subset_json_benchmark_with_lanas_reaches_its_optimum(shared_data, tmp_path):
    path = shared_data / "nb101-subset" / "data-20k.json"
    raw = json.loads(path.read_text())
    cfg = compose_config("benchmark=nasbench101", f"benchmark.path={path}", "benchmark.reward=val_mean")
    assert cfg.search_space._target_.endswith("NASBench101Space")  # chosen by benchmark=nasbench101
    summary = run(cfg, tmp_path)
    assert summary["global_optimum"] == max(raw["108_final_validation_accuracy"])
    assert summary["best_reward"] == summary["global_optimum"]
    assert summary["samples_to_optimum"] == summary["num_samples"] < 20_001
    bench = NASBench101Benchmark(str(path), reward="val_mean")
    assert len(bench.table) == 20_001
    space = bench.candidate_space(NASBench101Space())
    keys = set(raw["key"])
    import csv
    with open(tmp_path / "trace.csv") as handle:
        for row in csv.DictReader(handle):
            assert space.arch_id(space.from_string(row["arch"])) in keys


def test_rewards_budgets_and_optimum_on_the_real_file(tfrecords):
    path = str(tfrecords / "energy_4V9E.tfrecord")
    rng = np.random.default_rng(0)
    test = NASBench101Benchmark(path, "test_mean", epochs=108)
    tab = nbtable.load_table(path)
    expected = tab.column("final_test_accuracy", 108).astype(np.float64).mean(axis=1)
    assert test.global_optimum == expected.max()
    best = test.optimal_archs()
    assert test.query(best, rng)[0] == expected.max()
    val12 = NASBench101Benchmark(path, "val_mean", epochs=12)
    assert val12.global_optimum == tab.column("final_validation_accuracy", 12).astype(np.float64).mean(1).max()
    sampled = NASBench101Benchmark(path, "val_sampled", epochs=108)
    archs = np.arange(91)
    draws = np.stack([sampled.query(archs, rng) for _ in range(30)])
    repeats = sampled.table
    assert np.all(np.any(draws[:, :, None] == repeats[None], axis=2))
    assert np.mean(draws.std(axis=0) > 0) > 0.9  # repeats differ, so draws vary


def test_benchmark_errors_name_the_key(tfrecords, shared_data):
    five = str(tfrecords / "energy_5V9E.tfrecord")
    with pytest.raises(ConfigError, match=r"benchmark.epochs=108 .*allowed: 4"):
        NASBench101Benchmark(five)
    with pytest.raises(ConfigError, match=r"benchmark.reward='test_mean' .*allowed: val_mean, val_sampled"):
        NASBench101Benchmark(str(shared_data / "nb101-subset" / "data-20k.json"))
    with pytest.raises(ConfigError, match="benchmark.reward='test' is unknown"):
        NASBench101Benchmark(five, reward="test")
    with pytest.raises(ConfigError, match="benchmark.path must name"):
        NASBench101Benchmark(None)
    with pytest.raises(ConfigError, match="needs search_space=nasbench101"):
        from lanas.spaces.nasbench201 import NASBench201Space

        NASBench101Benchmark(five, epochs=4).candidate_space(NASBench201Space())


def test_run_py_on_the_official_format(tfrecords, tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    base = [sys.executable, str(ROOT / "run.py"), "benchmark=nasbench101", "logger=none", "progress=false"]
    ok = subprocess.run([*base, f"benchmark.path={tfrecords / 'energy_4V9E.tfrecord'}", "searcher.init_samples=5",
                         f"hydra.run.dir={tmp_path / 'ok'}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "lanas on nasbench101/cifar10 seed=0" in ok.stdout and "samples_to_optimum=" in ok.stdout
    missing = subprocess.run([*base, f"benchmark.path={tmp_path / 'absent.tfrecord'}",
                              f"hydra.run.dir={tmp_path / 'bad'}"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error:") and "absent.tfrecord does not exist" in missing.stderr


# --- download ---------------------------------------------------------------------------

def test_download_checks_the_sha256_and_keeps_nothing_on_mismatch(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"nasbench" * 1000)
    import hashlib

    good = hashlib.sha256(source.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "file.tfrecord"
    with pytest.raises(BenchmarkDataError, match="SHA-256"):
        download.download(source.as_uri(), "0" * 64, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert download.download(source.as_uri(), good, dest).read_bytes() == source.read_bytes()
    assert set(download.FILES) == {"only108", "full"}


@settings(max_examples=150, deadline=None)
@given(cells)
def test_fast_mask_hash_agrees_with_the_model_spec(cell):
    from lanas.nasbench101.spec import hash_of_masks

    bits, ops, _ = cell
    matrix, names = raw_cell(bits, ops)
    out = [int(sum(1 << w for w in np.flatnonzero(matrix[v]))) for v in range(7)]
    fast = hash_of_masks(out, [-1, *[OPS.index(o) for o in ops], -2])
    try:
        expected = spec_hash(matrix, names)
    except InvalidArchitectureError:
        expected = None
    assert fast == expected
