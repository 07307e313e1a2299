import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dclm.errors import DclmError  # noqa: E402
from dclm.train.config import TrainConfig  # noqa: E402
from dclm.train.data import DataOrder, Source, open_dataset, open_sources, read_rows  # noqa: E402
from dclm.train.optim import lm_loss, lr_at  # noqa: E402
from dclm.train.run import run_train  # noqa: E402
from dclm.train.scales import SCALES, dclm_param_count, get_scale, list_scales  # noqa: E402

from .conftest import SEQ_LEN, read_metrics, run_cli  # noqa: E402


def smoke(data, out, **kw) -> TrainConfig:
    base = dict(scale="smoke", data=(str(data),), output=str(out), seq_len=SEQ_LEN, log_every=1, progress=False,
                tensorboard=False, max_steps=12, global_batch_size=8, micro_batch_size=4)
    base.update(kw)
    return TrainConfig(**base)


def losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir)]


# ---------------------------------------------------------------- scales


def test_dclm_scales_match_dclm_configs(shared_dir):
    files = {"411m_1x": "411m_1x", "1b_1x": "1b_1x_fast", "3b_1x": "3b_1x_fast_3e-3_lr_1e-4_zloss",
             "7b_1x": "7b_1x_fast_2e-3_lr_5e-6_zloss", "7b_2x": "7b_2x_fast_2e-3_lr_5e-6_zloss"}
    for name, fname in files.items():
        ref = json.loads((shared_dir / "dclm_reference" / "training_configs" / f"{fname}.json").read_text())
        s = get_scale(fname)
        assert s.name == name
        args = s.model_args()
        assert dclm_param_count(args) == ref["params"]
        assert dclm_param_count(args) - args.vocab_size * args.dim == ref["params_no_embed"]
        assert (s.tokens, s.warmup, s.lr, s.wd, s.cd, s.global_bs, s.z_loss, s.qk_norm) == (
            ref["tokens"], ref["warmup"], ref["lr"], ref["wd"], ref["cd"], ref["global_bs"], ref["z_loss"],
            ref["qk_norm"])
        assert s.chinchilla_multiplier == ref["chinchilla_multiplier"]


def test_step_counts_are_dclms():
    # training/params.py + open_lm main.py arithmetic, as DCLM's runs logged them
    assert {k: SCALES[k].total_steps for k in ("411m_1x", "1b_1x", "3b_1x", "7b_1x", "7b_2x")} == {
        "411m_1x": 7850, "1b_1x": 54923, "3b_1x": 106656, "7b_1x": 32851, "7b_2x": 65702}


def test_list_scales_smallest_first():
    lines = run_cli("train", "--list-scales").stdout.splitlines()
    assert lines[0].split()[0] == "scale"
    names = [ln.split()[0] for ln in lines[1:] if ln.split() and ln.split()[0] in SCALES]
    assert names[0] == "smoke" and set(names) == set(SCALES)
    sizes = [SCALES[n].model_args().num_params() for n in names]
    assert sizes == sorted(sizes)
    assert list_scales().splitlines()[1].startswith("smoke")


def test_unknown_scale_suggests():
    r = run_cli("train", "--scale", "411m", "--data", "x", "--output", "y")
    assert r.returncode == 2 and "411m_1x" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- optimisation


def test_lr_schedule():
    assert lr_at(0, 1.0, 10, 100, 0.01) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 10, 100, 0.01) == pytest.approx(1.0)
    assert lr_at(10, 1.0, 10, 100, 0.01) == pytest.approx(1.0)
    assert lr_at(55, 1.0, 10, 100, 0.01) == pytest.approx(0.01 + 0.5 * 0.99)
    assert lr_at(100, 1.0, 10, 100, 0.01) == pytest.approx(0.01)


def test_loss_is_ce_plus_z_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=g)
    targets = torch.randint(0, 11, (2, 5), generator=g)
    loss, ce = lm_loss(logits, targets, 1e-2)
    ref_ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))
    assert ce.item() == pytest.approx(ref_ce.item(), rel=1e-6)
    assert loss.item() == pytest.approx(ref_ce.item() + 1e-2 * torch.logsumexp(logits, -1).pow(2).mean().item(), rel=1e-6)


# ---------------------------------------------------------------- data


def tar_copy(token_data: Path, dest: Path) -> Path:
    """The open_lm view alone (tars + manifest.jsonl), as DCLM's tokshuf-rs leaves it."""
    dest.mkdir()
    for f in token_data.iterdir():
        if f.suffix == ".tar" or f.name == "manifest.jsonl":
            shutil.copy(f, dest / f.name)
    return dest


def test_tar_and_native_views_read_the_same_rows(token_data, tmp_path):
    tars = tar_copy(token_data, tmp_path / "tars")
    native, tar = open_dataset(str(token_data)), open_dataset(str(tars / "manifest.jsonl"))
    assert type(native).__name__ == "NativeDataset" and type(tar).__name__ == "TarDataset"
    assert native.shard_sizes == tar.shard_sizes and native.seqlen == tar.seqlen == SEQ_LEN + 1
    idx = np.array([5, 0, 17])
    assert np.array_equal(native.rows(1, idx), tar.rows(1, idx))


def test_order_is_seeded_and_covers_a_pass(token_data):
    sources = open_sources((str(token_data),))
    n = len(sources[0])
    a, b = DataOrder(sources, 7, 8, False), DataOrder(sources, 7, 8, False)
    picks = [p for step in range(n // 8) for p in a.next_batch(step)]
    assert picks == [p for step in range(n // 8) for p in b.next_batch(step)]
    assert len(set(picks)) == len(picks)  # no sequence twice within a pass
    c = DataOrder(sources, 8, 8, False)
    assert c.next_batch(0) != picks[:8]
    with pytest.raises(DclmError, match="multiple-data-passes"):
        for step in range(n // 8, n // 8 + 2):
            a.next_batch(step)


def test_weighted_mix_follows_weights(token_data, tmp_path):
    mix = tmp_path / "mix.yaml"
    mix.write_text(f"sources:\n  - {{path: {token_data}, weight: 3}}\n  - {{path: {token_data}, weight: 1}}\n")
    sources = open_sources((str(mix),))
    order = DataOrder(sources, 0, 100, True)
    picks = [p[0] for step in range(20) for p in order.next_batch(step)]
    assert 0.70 < picks.count(0) / len(picks) < 0.80
    assert order.state()["cursors"] == [picks.count(0), picks.count(1)]
    rows = read_rows(sources, order.next_batch(20))
    assert rows.shape == (100, SEQ_LEN + 1)


# ---------------------------------------------------------------- training


def test_loss_falls_and_resume_is_exact(token_data, tmp_path):
    full = run_train(smoke(token_data, tmp_path / "full", max_steps=24))
    assert full.losses[-1][1] < full.losses[0][1] - 1.0
    run_train(smoke(token_data, tmp_path / "cut", max_steps=12))
    resumed = run_train(smoke(token_data, tmp_path / "cut", max_steps=24, resume="latest"))
    assert resumed.resumed_from == 12
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")  # bit for bit, every step
    assert [r["step"] for r in read_metrics(tmp_path / "cut")] == list(range(1, 25))


def test_tar_data_trains_like_native(token_data, tmp_path):
    tars = tar_copy(token_data, tmp_path / "tars")
    run_train(smoke(token_data, tmp_path / "a", max_steps=3, vocab_size=640))
    run_train(smoke(tars, tmp_path / "b", max_steps=3, vocab_size=640))  # tars record no tokenizer
    with pytest.raises(DclmError, match="outside the model's 256 embedding rows"):
        run_train(smoke(tars, tmp_path / "c", max_steps=3, vocab_size=256))
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_final_model_generates_and_loads_in_transformers(token_data, tmp_path):
    out = tmp_path / "run"
    r = run_train(smoke(token_data, out, max_steps=None, tokens=8 * SEQ_LEN * 10))  # a 10-step schedule
    assert r.steps == r.total_steps == 10 and r.model_dir == str(out / "model")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(out / "model"))
    ref = json.loads((out / "model_reference.json").read_text())
    assert ref["hyperparameters"]["global_bs"] == 8 and ref["hyperparameters"]["seed"] == 124
    assert ref["name"].startswith("tokens-smoke-warm=10-lr=0p01-")
    gen = run_cli("generate", "--model", str(out / "model"), "--prompt", "The", "--max-new-tokens", "5", "--greedy")
    assert gen.returncode == 0, gen.stderr
    import dclm.hf  # noqa: F401
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(out / "model"))
    assert sum(p.numel() for p in model.parameters()) > 0


# ---------------------------------------------------------------- bad input


def test_bad_inputs_are_one_line(token_data, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--data", str(tmp_path / "missing")], "no such file"),
        (["--data", str(empty)], "no index.json"),
        (["--data", str(token_data), "--global-batch-size", "6", "--micro-batch-size", "4"], "multiple of 4"),
        (["--data", str(token_data), "--seq-len", "128"], "--seq-len 64"),
        (["--data", str(token_data), "--vocab-size", "256"], "--vocab-size 640"),
        (["--data", str(token_data), "--max-steps", "100000"], "--multiple-data-passes"),
    ]
    for extra, needle in cases:
        out = tmp_path / f"out{len(os.listdir(tmp_path))}"
        argv = ["train", "--scale", "smoke", "--output", str(out), "--no-progress", *extra]
        if "--seq-len" not in extra:
            argv += ["--seq-len", str(SEQ_LEN)]
        r = run_cli(*argv)
        assert r.returncode == 2, (extra, r.stderr)
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, (extra, r.stderr)
        assert not out.exists()  # nothing half-written


def test_checkpoint_problems(token_data, tmp_path):
    out = tmp_path / "run"
    run_train(smoke(token_data, out, max_steps=2))
    with pytest.raises(DclmError, match="already holds checkpoints"):
        run_train(smoke(token_data, out, max_steps=4))
    with pytest.raises(DclmError, match="other lr"):
        run_train(smoke(token_data, out, max_steps=4, resume="latest", lr=1e-3))
    ckpt = out / "checkpoints" / "step_00000002"
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    r = run_cli("train", "--scale", "smoke", "--data", str(token_data), "--output", str(out), "--seq-len",
                str(SEQ_LEN), "--global-batch-size", "8", "--micro-batch-size", "4", "--resume", "latest",
                "--max-steps", "4", "--no-progress")
    assert r.returncode == 2 and "damaged checkpoint" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- torchrun


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(token_data, tmp_path):
    argv = ["train", "--scale", "smoke", "--data", str(token_data), "--seq-len", str(SEQ_LEN), "--log-every", "1",
            "--no-progress", "--max-steps", "6", "--global-batch-size", "8", "--micro-batch-size", "4",
            "--no-tensorboard"]
    one = run_cli(*argv, "--output", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "dclm", *argv, "--output", str(tmp_path / "two")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4
    assert all(math.isfinite(x) for x in b)
    state = json.loads((tmp_path / "two" / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert state["world_size"] == 2


def test_cpu_bf16_autocast_trains_and_resumes(token_data, tmp_path):
    """`--precision bf16` on the CPU (AMX or AVX-512-BF16 where present): finite falling losses, and a resume
    continues the same run."""
    full = run_train(smoke(token_data, tmp_path / "full", precision="bf16"))
    assert all(math.isfinite(v) for _, v in full.losses)
    first, last = full.losses[0][1], full.losses[-1][1]
    assert last < first
    run_train(smoke(token_data, tmp_path / "part", precision="bf16", max_steps=6))
    resumed = run_train(smoke(token_data, tmp_path / "part", precision="bf16", resume="latest"))
    assert resumed.losses[-1][1] == pytest.approx(last, rel=1e-3)


@pytest.mark.gpu
def test_cuda_defaults_bf16_compile_fused(token_data, tmp_path):
    r = run_train(smoke(token_data, tmp_path / "gpu", max_steps=4, device="auto"))
    assert r.steps == 4 and all(math.isfinite(v) for _, v in r.losses)
    state = json.loads((tmp_path / "gpu" / "checkpoints" / "step_00000004" / "state.json").read_text())
    assert state["step"] == 4
