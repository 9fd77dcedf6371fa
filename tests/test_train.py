"""Adversarial training, robust evaluation, resume and the ``zcproxy verify`` command."""
from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from zcproxy.cli import main as cli_main
from zcproxy.errors import ZcproxyError
from zcproxy.space import NB201
from zcproxy.store import load, pivot
from zcproxy.validate import orientations
from zcproxy.validate import train as T

TINY = T.TrainConfig(method="fgsm-rs", epochs=2, train_size=32, batch_size=16, C=4, N=1, seed=3)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    """Synthetic CIFAR-10 python-layout files (64 train, 40 test images) with learnable labels."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", 64), ("test_batch", 40)):
        labels = rng.integers(0, 10, n)
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        data[:, :1024] = (labels[:, None] * 25).astype(np.uint8)  # red channel encodes the label
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": data, b"labels": labels.tolist()}, handle)
    return root


# ------------------------------------------------------------------------------------------ augmentation


def test_crop_flip_matches_per_image_loop():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(7, 3, 8, 8, generator=gen)
    offsets, flips = T._draw_augmentation(7, gen, pad=2)
    out = T._crop_flip(x, offsets, flips, pad=2)
    for i in range(7):
        padded = torch.zeros(3, 12, 12)
        padded[:, 2:10, 2:10] = x[i]
        r, c = int(offsets[i, 0]), int(offsets[i, 1])
        expected = padded[:, r:r + 8, c:c + 8]
        if flips[i]:
            expected = expected.flip(2)
        assert torch.equal(out[i], expected)
    assert offsets.min() >= 0 and offsets.max() <= 4
    centre = T._crop_flip(x, torch.full((7, 2), 2), torch.zeros(7, dtype=torch.bool), pad=2)
    assert torch.equal(centre, x)


# --------------------------------------------------------------------------------------------- attacks


class _SumModel(nn.Module):
    """Two logits: sum(x) - t and 0, so class 0 iff the pixel sum exceeds t (float64)."""

    def __init__(self, t: float):
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 4, 2).double()
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[0] = 1.0
            self.linear.bias.copy_(torch.tensor([-t, 0.0]))

    def forward(self, x):
        return self.linear(x.flatten(1))


def test_evaluate_matches_closed_form_on_linear_model():
    # The worst case in the eps ball (and [0, 1]) moves every pixel by eps against the true class;
    # FGSM and 20-step PGD (2.5 eps of travel) both reach it, and every earlier iterate is milder.
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(300, 3, 4, 4, generator=gen, dtype=torch.float64)
    t = 24.0
    y = (x.flatten(1).sum(1) <= t).long()
    y[::7] = 1 - y[::7]  # some clean mistakes
    eps = 8 / 255
    flat = x.flatten(1)
    down = (flat - eps).clamp(min=0).sum(1)
    up = (flat + eps).clamp(max=1).sum(1)
    clean = (flat.sum(1) <= t).long() == y  # class 1 iff the sum is at most t
    robust = torch.where(y == 0, down > t, up <= t) & clean
    model = _SumModel(t)
    got = T.evaluate(model, x, y, T.EvalConfig(eval_size=None, eps=(eps,), batch_size=64))
    assert got["clean"] == pytest.approx(clean.double().mean().item())
    assert got["fgsm_8"] == pytest.approx(robust.double().mean().item())
    assert got["pgd_8"] == pytest.approx(robust.double().mean().item())
    assert 0 < got["pgd_8"] < got["clean"] < 1


def test_early_stopped_pgd_equals_full_trajectory_check():
    torch.manual_seed(0)
    model = NB201.build(13714, C=4, N=1).double().eval()
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(16, 3, 32, 32, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:6] = (y[:6] + 1) % 10  # misclassified from the start
    clean = model(x).argmax(1) == y
    eps, step, steps = 8 / 255, 2.5 * 8 / 255 / 5, 5
    got = T._robust_correct(model, x, y, clean, eps, step, steps, True, torch.Generator().manual_seed(9))
    # Brute force: attack every image for every step, record whether any iterate fooled the model.
    delta = T._random_start(x, eps, torch.Generator().manual_seed(9))
    ok = clean.clone()
    for _ in range(steps):
        delta, logits = T._attack_step(model, x, y, delta, eps, step)
        ok &= logits.argmax(1) == y
    with torch.no_grad():
        ok &= model(x + delta).argmax(1) == y
    assert torch.equal(got, ok)
    assert not got[:6].any()


def test_attack_stays_in_ball_and_image_range_without_touching_model():
    model = NB201.build(0, C=4, N=1).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(8, 3, 32, 32)
    x[0] = 0.0
    x[1] = 1.0
    y = torch.arange(8) % 10
    eps = 8 / 255
    adv = T._adversarial_batch(model, x, y, eps, 2 / 255, 3, torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert not adv.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_restores_mode_and_leaves_parameters():
    model = NB201.build(0, C=4, N=1)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(10)
    got = T.evaluate(model, x, y, T.EvalConfig(eval_size=None, pgd_steps=2, batch_size=4))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(got) == set(T.METRICS)
    assert all(0.0 <= v <= got["clean"] <= 1.0 for k, v in got.items())
    with pytest.raises(ValueError, match="images must be"):
        T.evaluate(model, x[:3], y, T.EvalConfig())
    with pytest.raises(ValueError, match=r"floats in \[0, 1\]"):
        T.evaluate(model, x.float(), y, T.EvalConfig())  # 0..255 floats: forgot to scale


# ----------------------------------------------------------------------------------------- configuration


def test_config_validation_and_fgsm_rs_attack():
    assert T.TrainConfig(method="fgsm-rs").attack == pytest.approx((8 / 255, 10 / 255, 1))
    assert T.TrainConfig().attack == pytest.approx((8 / 255, 2 / 255, 7))
    with pytest.raises(ValueError, match="method must be one of"):
        T.TrainConfig(method="trades")
    with pytest.raises(ValueError, match="epochs must be an int"):
        T.TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="eps must be"):
        T.TrainConfig(eps=float("nan"))
    with pytest.raises(ValueError, match="eval_size"):
        T.EvalConfig(eval_size=-1)
    assert TINY.key(5) != replace(TINY, epochs=3).key(5)
    assert TINY.key(5) == T.TrainConfig(**{f: getattr(TINY, f) for f in TINY.__dataclass_fields__}).key(5)


def _fake_truth(values: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({("cifar10", "pgd_8"): np.full(NB201.size(), np.nan)})
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.loc[NB201.unique(), ("cifar10", "pgd_8")] = values
    return frame


def test_select_archs_quantiles_and_extras():
    reps = NB201.unique()
    values = np.random.default_rng(0).random(len(reps))
    truth = _fake_truth(values)
    picked = T.select_archs("quantiles:5,13714, 7", truth)
    assert picked[5:] == [13714, 7]
    quant = picked[:5]
    assert set(quant) <= set(reps) and len(set(quant)) == 5
    column = truth[("cifar10", "pgd_8")]
    chosen = column.loc[quant].to_numpy()
    assert np.all(np.diff(chosen) > 0)
    for k, v in enumerate(chosen):  # empirical CDF at the pick is the target quantile (within one arch)
        assert abs((values <= v).mean() - (k + 0.5) / 5) <= 1.0 / len(values) + 1e-12
    assert T.select_archs("13714,13714", truth) == [13714]
    with pytest.raises(ValueError, match="expected quantiles:N"):
        T.select_archs("quantiles:x", truth)
    with pytest.raises(ValueError, match="'99999' is not an architecture of search space 'nb201'"):
        T.select_archs("99999", truth)
    with pytest.raises(ValueError, match="selects no architecture"):
        T.select_archs(" , ", truth)


# ----------------------------------------------------------------------------------------------- training


def _states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_after_interruption_reproduces_uninterrupted_run(cifar_dir, tmp_path):
    rng_before = torch.random.get_rng_state()
    full = T.train(13714, TINY, tmp_path / "a", data_dir=cifar_dir)
    assert torch.equal(rng_before, torch.random.get_rng_state())  # global RNG untouched
    assert full.complete and full.resumed_from == 0 and [h["epoch"] for h in full.history] == [1, 2]
    first = T.train(13714, TINY, tmp_path / "b", data_dir=cifar_dir, epoch_limit=1)
    assert first.epochs_done == 1 and not first.complete
    assert (tmp_path / "b" / TINY.key(13714) / "checkpoint.pt").is_file()
    assert not _states_equal(first.model, full.model)
    resumed = T.train(13714, TINY, tmp_path / "b", data_dir=cifar_dir)
    assert resumed.resumed_from == 1 and resumed.complete
    assert _states_equal(resumed.model, full.model)
    assert [h["adv_loss"] for h in resumed.history] == [h["adv_loss"] for h in full.history]
    again = T.train(13714, TINY, tmp_path / "b", data_dir=cifar_dir)  # finished: nothing retrained
    assert again.resumed_from == 2 and _states_equal(again.model, full.model)
    # Without a run directory nothing is written and the result is the same.
    plain = T.train(13714, TINY, None, data_dir=cifar_dir)
    assert _states_equal(plain.model, full.model)


def test_pgd_training_changes_weights_and_differs_from_fgsm_rs(cifar_dir):
    config = replace(TINY, method="pgd", attack_steps=2, epochs=1)
    pgd = T.train(0, config, None, data_dir=cifar_dir)
    fgsm = T.train(0, replace(config, method="fgsm-rs"), None, data_dir=cifar_dir)
    init = T._build(0, config)
    assert not _states_equal(pgd.model, init)
    assert not _states_equal(pgd.model, fgsm.model)
    assert not pgd.model.training


def test_unreadable_checkpoint_is_reported(cifar_dir, tmp_path):
    folder = tmp_path / TINY.key(0)
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ZcproxyError, match="delete it"):
        T.train(0, TINY, tmp_path, data_dir=cifar_dir)


def test_train_size_larger_than_data_is_rejected(cifar_dir):
    with pytest.raises(ValueError, match="train_size 1000 exceeds the 64 images"):
        T.train(0, replace(TINY, train_size=1000), None, data_dir=cifar_dir)


def test_verify_arch_writes_result_and_skips_when_done(cifar_dir, tmp_path):
    config = replace(TINY, epochs=1)
    evaluation = T.EvalConfig(eval_size=20, pgd_steps=2, batch_size=20)
    record = T.verify_arch(0, config, evaluation, run_dir=tmp_path, data_dir=cifar_dir)
    path = tmp_path / config.key(0) / "result.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))
    assert record["settings"]["train"]["C"] == 4 and record["settings"]["eval"]["eval_size"] == 20
    assert all(0.0 <= v <= 1.0 for v in record["metrics"].values())
    stamp = path.stat().st_mtime_ns
    assert T.verify_arch(0, config, evaluation, run_dir=tmp_path, data_dir=cifar_dir) == record
    assert path.stat().st_mtime_ns == stamp
    changed = T.verify_arch(0, config, replace(evaluation, eval_size=10), run_dir=tmp_path, data_dir=cifar_dir)
    assert changed["settings"]["eval"]["eval_size"] == 10


# ------------------------------------------------------------------------------------------------ CLI


@pytest.mark.data
def test_cli_verify_smoke_on_real_data(data_dir, tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["verify", "--archs", "13714,0", "--method", "fgsm-rs", "--epochs", "1", "--train-size", "256",
            "--eval-size", "64", "--C", "4", "--N", "1", "--pgd-steps", "3", "--out", str(out),
            "--run-dir", str(runs), "--data-dir", str(data_dir), "--quiet"]
    assert cli_main(argv) == 0
    table = pd.read_csv(out / "verify.csv")
    assert sorted(table["index"]) == [0, 13714]
    for metric in T.METRICS:
        assert table[f"ours_{metric}"].between(0, 1).all()
        assert table[f"bench_{metric}"].between(0, 1).all()
    assert (table["bench_pgd_8"].diff().dropna() >= 0).all()
    assert {p.name for p in (out / "json").iterdir()} == {"0.json", "13714.json"}
    assert "Kendall" in (out / "verify.md").read_text()
    checkpoints = sorted(runs.glob("*/checkpoint.pt"))
    assert len(checkpoints) == 2
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    assert cli_main(argv) == 0  # rerun resumes: nothing retrained
    assert [p.stat().st_mtime_ns for p in checkpoints] == stamps
    # the accuracies also went to the store, with their settings, and correlate like any score column
    stored = load(runs / "verify.sqlite")
    assert len(stored) == 2 * len(T.METRICS)
    wide = pivot(stored)
    assert sorted(wide.columns) == sorted(f"trained_{m}" for m in T.METRICS)
    by_index = table.set_index("index")
    for metric in T.METRICS:
        assert wide[f"trained_{metric}"].to_dict() == pytest.approx(by_index[f"ours_{metric}"].to_dict())
    settings = stored["settings"].iloc[0]
    assert settings["train_method"] == "fgsm-rs" and settings["train_C"] == 4 and settings["eval_pgd_steps"] == 3
    assert orientations(list(wide.columns)) == {c: True for c in wide.columns}


@pytest.mark.data
def test_cli_verify_bad_archs_is_a_usage_error(data_dir, tmp_path, capsys):
    code = cli_main(["verify", "--archs", "quantiles:0", "--out", str(tmp_path), "--data-dir", str(data_dir)])
    assert code == 2
    assert "--archs quantiles:0: K must be at least 1" in capsys.readouterr().err
