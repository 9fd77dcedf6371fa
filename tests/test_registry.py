"""The proxy registry and zcproxy.score's contract, with small fake proxies."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import zcproxy
import zcproxy.proxies as proxies
from zcproxy.errors import ProxyError
from zcproxy.proxies import proxy
from zcproxy.scoring import planned_settings, score
from zcproxy.space import NB201


def _install(monkeypatch, *fns):
    table = {f.__proxy_spec__.name: f.__proxy_spec__ for f in fns}
    monkeypatch.setattr(proxies, "spec", lambda n: table[n] if n in table else (_ for _ in ()).throw(KeyError(n)))
    monkeypatch.setattr(proxies, "available", lambda: sorted(table))


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))


def _batch(n: int = 4):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_decorator_rejects_bad_metadata():
    with pytest.raises(ValueError, match="needs"):
        proxy("x", reference="r", cost="static", needs=("gpu",))
    with pytest.raises(ValueError, match="bn must be"):
        proxy("x", reference="r", cost="static", bn="frozen")
    with pytest.raises(ValueError, match="cost must be"):
        proxy("x", reference="r", cost="cheap")


def test_decorator_attaches_spec_without_registering_globally():
    before = proxies.available()

    @proxy("zz_local_only", reference="r", cost="static")
    def local(ctx):
        return 1.0

    assert local.__proxy_spec__.name == "zz_local_only"
    assert proxies.available() == before
    assert "zz_local_only" not in proxies.available()


def test_available_is_sorted_and_unknown_name_lists_valid_ones():
    names = proxies.available()
    assert names == sorted(names) and "params" in names
    with pytest.raises(KeyError) as err:
        proxies.spec("no_such_proxy")
    assert "no_such_proxy" in str(err.value) and "params" in str(err.value)


def test_every_spec_has_complete_metadata():
    for name, s in proxies.specs().items():
        assert s.name == name
        assert s.reference.strip(), name
        assert s.bn in ("train", "eval") and isinstance(s.higher_is_better, bool)
        assert set(s.orientation) == set(s.outputs)


def test_score_params_on_index_and_model_agree():
    by_index = score(13714, "params")["params"]
    assert by_index.value == pytest.approx(1.073466)
    assert by_index.settings == planned_settings("params")
    model = NB201.build(13714)
    assert score(model, ["params"])["params"].value == by_index.value


def test_score_does_not_touch_model_or_global_rng(monkeypatch):
    @proxy("mutator_probe", reference="r", cost="backward", needs=("data", "labels"), bn="train")
    def probe(ctx):
        m = ctx.model_copy()
        loss = nn.functional.cross_entropy(m(ctx.x), ctx.y)
        loss.backward()
        torch.rand(3)  # global RNG use inside a proxy must not leak out
        return loss.item()

    _install(monkeypatch, probe)
    model = _tiny().eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    r1 = score(model, ["mutator_probe"], batch=_batch())
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    r2 = score(model, ["mutator_probe"], batch=_batch())
    assert r1["mutator_probe"].value == r2["mutator_probe"].value


def test_nan_becomes_proxy_error_naming_proxy_and_arch(monkeypatch):
    @proxy("nan_probe", reference="r", cost="static")
    def nan_probe(ctx):
        return math.nan

    _install(monkeypatch, nan_probe)
    with pytest.raises(ProxyError) as err:
        score(5, ["nan_probe"], strict=True)
    assert "nan_probe" in str(err.value) and "5" in str(err.value) and "NaN" in str(err.value)


def test_exception_inside_proxy_is_wrapped(monkeypatch):
    @proxy("boom", reference="r", cost="static")
    def boom(ctx):
        raise RuntimeError("kaput")

    _install(monkeypatch, boom)
    with pytest.raises(ProxyError, match="boom.*kaput"):
        score(7, ["boom"], strict=True)


def test_multi_output_must_match_declared_outputs(monkeypatch):
    @proxy("multi", reference="r", cost="static", outputs=("multi", "multi_a"),
           orientation={"multi_a": False})
    def multi(ctx):
        return {"multi": 1.0, "multi_a": 2.0}

    @proxy("multi_bad", reference="r", cost="static", outputs=("multi_bad", "multi_bad_a"))
    def multi_bad(ctx):
        return {"multi_bad": 1.0}

    _install(monkeypatch, multi, multi_bad)
    out = score(3, ["multi"])
    assert out["multi"].value == 1.0 and out["multi_a"].value == 2.0
    assert out["multi"].higher_is_better and not out["multi_a"].higher_is_better
    with pytest.raises(ProxyError, match="expected"):
        score(3, ["multi_bad"], strict=True)


def test_shared_work_is_computed_once_per_call(monkeypatch):
    calls = []

    def expensive():
        calls.append(1)
        return 2.0

    @proxy("share_a", reference="r", cost="forward")
    def a(ctx):
        return ctx.shared("k", expensive)

    @proxy("share_b", reference="r", cost="forward")
    def b(ctx):
        return ctx.shared("k", expensive) + 1

    _install(monkeypatch, a, b)
    out = score(3, ["share_a", "share_b"])
    assert len(calls) == 1 and out["share_b"].value == 3.0
    score(3, ["share_a"])
    assert len(calls) == 2  # nothing leaks between calls


def test_options_and_planned_settings(monkeypatch):
    @proxy("opt", reference="r", cost="static", defaults={"eps": 8 / 255})
    def opt(ctx):
        return ctx.options["eps"]

    _install(monkeypatch, opt)
    assert score(3, ["opt"])["opt"].value == pytest.approx(8 / 255)
    res = score(3, ["opt"], eps=0.01)["opt"]
    assert res.value == 0.01 and res.settings["eps"] == 0.01
    assert res.settings == planned_settings("opt", eps=0.01)
    with pytest.raises(ValueError, match="unknown option"):
        score(3, ["opt"], epz=0.01)


def test_zero_output_arch_is_flagged(monkeypatch):
    @proxy("const", reference="r", cost="static")
    def const(ctx):
        return 0.0

    _install(monkeypatch, const)
    dead = next(i for i in NB201.unique() if NB201.is_zero_output(i))
    alive = next(i for i in NB201.unique() if not NB201.is_zero_output(i))
    assert score(dead, ["const"])["const"].degenerate
    assert not score(alive, ["const"])["const"].degenerate


def test_bad_inputs_have_clear_errors():
    with pytest.raises(ValueError, match="no proxies"):
        score(3, [])
    with pytest.raises(ValueError, match="out of range"):
        score(20000, ["params"])
    with pytest.raises(ValueError, match="3.5 is not a NAS-Bench-201 architecture"):
        score(3.5, ["params"])
    with pytest.raises(ValueError, match="unknown dataset"):
        score(3, ["params"], dataset="mnist")


def test_generator_is_seeded_and_independent_of_global_state():
    ctx = proxies.ProxyContext(_tiny(), x=None, y=None, num_classes=10, device=torch.device("cpu"), seed=3,
                               dataset="cifar10", arch=None, zero_output=False, cache={})
    a = torch.rand(4, generator=ctx.generator(1))
    torch.manual_seed(123)
    b = torch.rand(4, generator=ctx.generator(1))
    c = torch.rand(4, generator=ctx.generator(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_lazy_top_level_api():
    assert zcproxy.score is score
    with pytest.raises(AttributeError):
        zcproxy.nope  # noqa: B018


def test_mixed_train_eval_modes_of_the_callers_model_are_kept():
    model = _tiny().train()
    model[1].eval()  # BatchNorm alone in eval mode
    score(model, ["params"])
    assert model.training and model[0].training and not model[1].training
