"""score(): a failing proxy is flagged and the others are kept; strict=True raises; non-finite models are named."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import zcproxy.proxies as proxies
from zcproxy.errors import ProxyError
from zcproxy.proxies import proxy
from zcproxy.scoring import score
from zcproxy.space import NB201


def _install(monkeypatch, *fns) -> None:
    table = {f.__proxy_spec__.name: f.__proxy_spec__ for f in fns}
    monkeypatch.setattr(proxies, "spec", lambda n: table[n] if n in table else (_ for _ in ()).throw(KeyError(n)))
    monkeypatch.setattr(proxies, "available", lambda: sorted(table))


@proxy("ok_probe", reference="r", cost="static")
def ok_probe(ctx):
    return 1.5


@proxy("boom_probe", reference="r", cost="static", outputs=("boom_probe", "boom_probe_b"))
def boom_probe(ctx):
    raise RuntimeError("kaput")


@proxy("nan_probe", reference="r", cost="static")
def nan_probe(ctx):
    return math.nan


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))


def _batch(n: int = 8, size: int = 8):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_failing_proxy_is_flagged_and_the_others_are_returned(monkeypatch):
    _install(monkeypatch, boom_probe, ok_probe, nan_probe)
    out = score(5, ["boom_probe", "ok_probe", "nan_probe"])
    assert set(out) == {"boom_probe", "boom_probe_b", "ok_probe", "nan_probe"}
    assert out["ok_probe"].value == 1.5 and not out["ok_probe"].failed and out["ok_probe"].error is None
    for name in ("boom_probe", "boom_probe_b"):
        r = out[name]
        assert r.failed and "failed" in r.flags and math.isnan(r.value)
        assert "boom_probe" in r.error and "kaput" in r.error and "architecture 5" in r.error
        assert r.settings["proxy"] == "boom_probe"
    assert out["nan_probe"].failed and math.isnan(out["nan_probe"].value) and "is NaN" in out["nan_probe"].error


def test_strict_raises_the_first_failure(monkeypatch):
    _install(monkeypatch, ok_probe, boom_probe)
    with pytest.raises(ProxyError, match="boom_probe.*kaput") as err:
        score(5, ["ok_probe", "boom_probe"], strict=True)
    assert err.value.proxy == "boom_probe" and err.value.arch == 5


def test_failure_on_a_module_names_its_class(monkeypatch):
    _install(monkeypatch, boom_probe)
    message = score(_tiny(), ["boom_probe"])["boom_probe"].error
    assert "model Sequential" in message and "None" not in message
    with pytest.raises(ProxyError, match="model Sequential") as err:
        score(_tiny(), ["boom_probe"], strict=True)
    assert "None" not in str(err.value)


def test_proxy_error_raised_inside_a_proxy_on_a_module_names_its_class():
    message = score(_tiny(), ["zico"], batch=_batch(n=1))["zico"].error  # zico needs two images
    assert message and "model Sequential" in message and "architecture None" not in message


def _nan_weight_model() -> nn.Module:
    torch.manual_seed(0)
    model = NB201.build(13714, C=4, N=1)
    with torch.no_grad():
        next(m for m in model.modules() if isinstance(m, nn.Linear)).bias[0] = math.nan
    return model


class _NaNForward(nn.Module):
    """A healthy NB201 network whose logits are multiplied by NaN in forward (finite weights)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = NB201.build(13714, C=4, N=1)

    def forward(self, x):
        return self.net(x) * math.nan


def _needs_an_architecture(message: str) -> bool:
    """The graph proxy's refusal of a bare model (it reads the architecture, not the weights)."""
    return "not a bare model" in message


@pytest.mark.parametrize("make", [_nan_weight_model, _NaNForward], ids=["nan_weight", "nan_forward"])
def test_every_registered_proxy_flags_or_names_a_nan_model(make):
    names = proxies.available()
    out = score(make(), names, batch=_batch(size=16))
    assert {r.settings["proxy"] for r in out.values()} == set(names)
    for output, r in out.items():
        flagged = "nonfinite_output" in r.flags
        named = r.failed and math.isnan(r.value) and ("is NaN" in r.error or _needs_an_architecture(r.error))
        assert flagged or named, (output, r)
        if not r.failed:
            assert flagged and math.isfinite(r.value), (output, r)
    for name in names:
        try:
            strict = score(make(), [name], batch=_batch(size=16), strict=True)
        except ProxyError as exc:
            assert ("is NaN" in str(exc) or _needs_an_architecture(str(exc))) and exc.proxy == name
        else:
            assert all("nonfinite_output" in r.flags for r in strict.values()), name


def test_healthy_model_has_no_nonfinite_flag():
    out = score(NB201.build(13714, C=4, N=1), ["meco", "params"], batch=_batch(size=16))
    assert all("nonfinite_output" not in r.flags and not r.failed for r in out.values())


def test_nonfinite_probe_forwards_only_a_few_images():
    """The probe costs a forward of 8 images of the 16-image batch (the proxies run on their own copies)."""
    model = NB201.build(13714, C=4, N=1)
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, inputs: seen.append(int(inputs[0].shape[0])))
    try:
        out = score(model, ["nwot"], batch=_batch(n=16))
    finally:
        handle.remove()
    assert not out["nwot"].failed
    assert seen == [8, 16]  # the probe's 8 images, then NASWOT's pass over the whole batch
