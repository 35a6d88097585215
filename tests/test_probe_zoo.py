"""``initlab.probe`` on a zoo of small models that reproduce real architectures' patterns.

Each test checks the coverage (every parameter, by qualified name), the reported tensors against values
computed here from a copy of the model at step 0, and that the trajectory is bit-identical with and without
the probe.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

import initlab
from initlab.errors import UserError

# -- the zoo ---------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """torchvision's BasicBlock: conv-bn-relu_, conv-bn, ``out += identity``, the same in-place ReLU."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNetish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = ResBlock()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.block(self.stem(x)).mean(dim=(2, 3)))


class InvertedResidual(nn.Module):
    """MobileNetV3's pattern: 1x1 expand, BN, in-place Hardswish, in-place Dropout, 1x1 project, BN, + x."""

    def __init__(self, c: int = 4, e: int = 12) -> None:
        super().__init__()
        self.expand = nn.Conv2d(c, e, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(e)
        self.act = nn.Hardswish(inplace=True)
        self.drop = nn.Dropout(0.5, inplace=True)
        self.project = nn.Conv2d(e, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(self.act(self.bn1(self.expand(x))))
        return self.fc((x + self.bn2(self.project(h))).mean(dim=(2, 3)))


class MyGELU(nn.Module):
    """A library's own GELU: a plain ``nn.Module``, not one of torch's activation classes."""

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * x * (1 + torch.tanh(0.7978845608 * (x + 0.044715 * x**3)))


class TinyTransformer(nn.Module):
    """Embedding, one encoder layer (MultiheadAttention, feed-forward with ``MyGELU``), an ``nn.Identity``
    placeholder after a projection (LayerScale / drop-path style), a head."""

    def __init__(self, vocab: int = 20, d: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.encoder = nn.TransformerEncoderLayer(
            d, 2, 32, dropout=0.0, activation=MyGELU(), batch_first=True
        )
        self.proj = nn.Linear(d, d)
        self.drop_path = nn.Identity()
        self.head = nn.Linear(d, 3)
        self.scale = nn.Parameter(torch.ones(()))  # a user's own parameter, held by no layer

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.encoder(self.embed(tokens))
        h = h + self.drop_path(self.proj(h))
        return self.head(h.mean(dim=1)) * self.scale


class Recurrent(nn.Module):
    def __init__(self, cell: type[nn.RNNBase]) -> None:
        super().__init__()
        self.rnn = cell(5, 8, num_layers=2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[0][:, -1])


class SparseBag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8, sparse=True)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.embed(tokens).mean(dim=1))


class Parametrized(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = parametrizations.spectral_norm(nn.Linear(6, 12))
        self.b = parametrizations.weight_norm(nn.Linear(12, 12))
        self.c = parametrizations.orthogonal(nn.Linear(12, 12))
        self.relu = nn.ReLU()
        self.head = nn.Linear(12, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.relu(self.c(self.relu(self.b(self.relu(self.a(x)))))))


class Twice(nn.Module):
    """One Linear called twice: the probes read its first call."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 10)
        self.shared = nn.Linear(10, 10)
        self.act = nn.Tanh()
        self.head = nn.Linear(10, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.inp(x))
        return self.head(self.act(self.shared(self.act(self.shared(h)))))


# -- helpers ---------------------------------------------------------------------------------------------

Batches = list[tuple[Tensor, Tensor]]


def data(shape: tuple[int, ...], steps: int = 4, n: int = 6, vocab: int = 0) -> Batches:
    gen = torch.Generator().manual_seed(1)
    make = (
        (lambda: torch.randint(0, vocab, (n, *shape), generator=gen))
        if vocab
        else (lambda: torch.randn(n, *shape, generator=gen))
    )
    return [(make(), torch.randint(0, 3, (n,), generator=gen)) for _ in range(steps)]


def fit(model: nn.Module, batches: Batches, probe=None, opt: Callable = torch.optim.SGD) -> dict[str, Tensor]:
    """A few SGD steps (dropout drawn from a fixed seed); the final state, parameters and buffers."""
    torch.manual_seed(7)
    optimizer = opt(model.parameters(), lr=0.05)
    for step, (x, y) in enumerate(batches):
        with probe.step(step) if probe is not None else nullcontext():
            F.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    if probe is not None:
        probe.close()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def probed_and_plain(
    make: Callable[[], nn.Module], batches: Batches, run_dir: Path, **options
) -> pd.DataFrame:
    """Train ``make()`` probed on every step and unprobed, assert the same final state bit for bit, and
    return the probed run's step-0 rows."""
    torch.manual_seed(0)
    model = make()
    twin = copy.deepcopy(model)
    probed = fit(model, batches, initlab.probe(model, run_dir, every=1, **options))
    plain = fit(twin, batches)
    assert probed.keys() == plain.keys()
    for key in plain:
        assert torch.equal(probed[key], plain[key]), key
    layers = initlab.load_run(run_dir).layers
    return layers[layers.step == 0]


def row(layers: pd.DataFrame, name: str, quantity: str, param: str = "") -> pd.Series:
    rows = layers[(layers.name == name) & (layers.quantity == quantity) & (layers.param == param)]
    assert len(rows) == 1, (name, quantity, param, len(rows))
    return rows.iloc[0]


def assert_describes(r: pd.Series, t: Tensor) -> None:
    """The row's count, extremes (exact) and moments (float32 sums) are those of ``t``."""
    v = t.detach().reshape(-1).float()
    assert r.n == v.numel()
    assert r["min"] == float(v.min()) and r["max"] == float(v.max())
    assert r["mean"] == pytest.approx(float(v.double().mean()), rel=1e-4, abs=1e-6)
    assert r["std"] == pytest.approx(float(v.double().std()), rel=1e-4)
    assert r.frac_zero == pytest.approx(float((v == 0).double().mean()), abs=1e-9) or v.numel() > 8192


def assert_every_parameter(layers: pd.DataFrame, model: nn.Module) -> None:
    seen = layers[layers.quantity.isin(["weight", "param"])].param
    assert sorted(seen) == sorted(name for name, _ in model.named_parameters())


def outputs(model: nn.Module, x: Tensor, *names: str) -> dict[str, Tensor]:
    """Each named module's output (first call, copied) in one plain forward of ``model`` on ``x``."""
    got: dict[str, Tensor] = {}
    modules = dict(model.named_modules())

    def keep(name: str, module: nn.Module, inputs: tuple, out: object) -> None:
        if name not in got:
            got[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()

    handles = [modules[n].register_forward_hook(functools.partial(keep, n)) for n in names]
    model(x)
    for h in handles:
        h.remove()
    return got


# -- the tests -------------------------------------------------------------------------------------------


def test_resnet_block_with_inplace_residual_sum_and_inplace_relu(tmp_path: Path) -> None:
    batches = data((1, 5, 5))
    torch.manual_seed(0)
    ref = copy.deepcopy(ResNetish())
    layers = probed_and_plain(ResNetish, batches, tmp_path)
    assert_every_parameter(layers, ref)
    x = batches[0][0]
    out = outputs(ref, x, "stem", "block.conv1", "block.bn1", "block.conv2")
    assert_describes(row(layers, "block.conv1", "preact"), out["block.bn1"])  # BN output, before the ReLU
    assert_describes(row(layers, "block.conv1", "act"), out["block.bn1"].relu())
    # `out += identity` sits between bn2 and the ReLU: conv2 has no act, its preact is its own output.
    assert not ((layers.name == "block.conv2") & (layers.quantity == "act")).any()
    why = {r["name"]: r.get("no_act", "") for r in initlab.load_run(tmp_path).summary["probed_layers"]}
    assert (
        "changed in place" in why["block.conv2"] and "output layer" in why["fc"] and why["block.conv1"] == ""
    )
    assert_describes(row(layers, "block.conv2", "preact"), out["block.conv2"])
    assert_describes(row(layers, "stem", "preact"), out["stem"])
    # BatchNorm's γ and β belong to the conv they follow.
    assert set(layers[layers.param == "block.bn2.weight"].layer) == {
        row(layers, "block.conv2", "weight", "block.conv2.weight").layer
    }


def test_inverted_residual_inplace_hardswish_then_inplace_dropout(tmp_path: Path) -> None:
    batches = data((4, 5, 5))
    torch.manual_seed(0)
    ref = copy.deepcopy(InvertedResidual())
    layers = probed_and_plain(InvertedResidual, batches, tmp_path)
    assert_every_parameter(layers, ref)
    bn = outputs(ref, batches[0][0], "bn1")["bn1"]
    assert_describes(row(layers, "expand", "preact"), bn)
    act = row(layers, "expand", "act")
    assert_describes(act, F.hardswish(bn))  # before the in-place dropout: its zeros are not there
    assert act.frac_zero < 0.05


def grads_at_step0(model: nn.Module, x: Tensor, y: Tensor, name: str) -> Tensor:
    """∂L/∂(output of module ``name``) in a plain forward/backward of ``model`` (autograd, no probe)."""
    kept: dict[str, Tensor] = {}
    module = dict(model.named_modules())[name]

    def hook(m, i, o):
        t = o[0] if isinstance(o, tuple) else o
        t.retain_grad()
        kept.setdefault("t", t)

    h = module.register_forward_hook(hook)
    F.cross_entropy(model(x), y).backward()
    h.remove()
    return kept["t"].grad


@pytest.mark.parametrize("named", [MyGELU, "MyGELU"])
def test_transformer_layer_attention_custom_gelu_and_identity(tmp_path: Path, named) -> None:
    batches = data((7,), vocab=20)
    torch.manual_seed(0)
    ref = copy.deepcopy(TinyTransformer())
    layers = probed_and_plain(TinyTransformer, batches, tmp_path, activations=[named])
    assert_every_parameter(layers, ref)
    attn = row(layers, "encoder.self_attn", "preact")
    x, y = batches[0]
    out = outputs(ref, x, "embed", "encoder.self_attn", "encoder.linear1", "proj")
    assert_describes(attn, out["encoder.self_attn"])  # the attention output, the tuple's first element
    params = set(layers[layers.layer == attn.layer].param)
    assert {"encoder.self_attn.in_proj_weight", "encoder.self_attn.out_proj.weight"} <= params
    assert_describes(row(layers, "encoder.linear1", "act"), MyGELU()(out["encoder.linear1"]))
    assert not ((layers.name == "proj") & (layers.quantity == "act")).any()  # nn.Identity is no activation
    assert_describes(row(layers, "proj", "preact"), out["proj"])
    assert row(layers, "TinyTransformer", "param", "scale").layer == 0
    assert_describes(
        row(layers, "encoder.self_attn", "grad_preact"), grads_at_step0(ref, x, y, "encoder.self_attn")
    )
    run = initlab.load_run(tmp_path)
    assert run.summary["param_coverage"] == 1.0
    kinds = {r["name"]: (r["kind"], r["act"]) for r in run.summary["probed_layers"]}
    assert kinds["encoder.self_attn"] == ("attention", None) and kinds["encoder.linear1"] == (
        "weight",
        "MyGELU",
    )


def test_an_unnamed_custom_activation_is_no_activation(tmp_path: Path) -> None:
    layers = probed_and_plain(TinyTransformer, data((7,), vocab=20, steps=1), tmp_path)
    assert "act" not in set(layers.quantity)


def test_activations_naming_no_module_of_the_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"activations=\['MyGelu'\] names no module of the model"):
        initlab.probe(TinyTransformer(), tmp_path, every=1, activations=["MyGelu"])
    assert not tmp_path.joinpath("summary.json").exists()


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_recurrent_classifiers(tmp_path: Path, cell: type[nn.RNNBase]) -> None:
    batches = data((4, 5))
    torch.manual_seed(0)
    ref = copy.deepcopy(Recurrent(cell))
    layers = probed_and_plain(lambda: Recurrent(cell), batches, tmp_path)
    assert_every_parameter(layers, ref)
    rnn = row(layers, "rnn", "preact")
    assert (rnn.fan_in, rnn.fan_out) == (5, 8)
    x, y = batches[0]
    assert_describes(rnn, ref.rnn(x)[0])
    assert_describes(row(layers, "rnn", "grad_preact"), grads_at_step0(copy.deepcopy(ref), x, y, "rnn"))
    assert {"rnn.weight_ih_l0", "rnn.weight_hh_l1", "rnn.bias_ih_l0"} <= set(
        layers[layers.layer == rnn.layer].param
    )
    F.cross_entropy(ref(x), y).backward()
    assert_describes(row(layers, "rnn", "grad_param", "rnn.weight_ih_l0"), ref.rnn.weight_ih_l0.grad)


def test_sparse_embedding_gradients_are_described_by_their_values(tmp_path: Path) -> None:
    batches = data((5,), vocab=50)
    torch.manual_seed(0)
    ref = copy.deepcopy(SparseBag())
    layers = probed_and_plain(SparseBag, batches, tmp_path)
    x, y = batches[0]
    F.cross_entropy(ref(x), y).backward()
    values = ref.embed.weight.grad.coalesce().values()
    grad = row(layers, "embed", "grad_weight", "embed.weight")
    assert grad.n == x.unique().numel() * 8
    assert_describes(grad, values)


def test_parametrized_weights_are_read_in_the_forward(tmp_path: Path) -> None:
    batches = data((6,))
    torch.manual_seed(0)
    ref = copy.deepcopy(Parametrized())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ".grad of a non-leaf tensor" warning, no other
        layers = probed_and_plain(Parametrized, batches, tmp_path)
    names = set(layers[layers.quantity == "param"].param) | {"head.weight"}  # head.weight: a weight row
    assert names == {name for name, _ in ref.named_parameters()}
    assert {"a.parametrizations.weight.original", "b.parametrizations.weight.original0", "c.bias"} <= names
    x, y = batches[0]
    with parametrize.cached():  # each weight computed once, as in the probed forward
        weights = {n: getattr(ref, n).weight for n in "abc"}
        for w in weights.values():
            w.retain_grad()
        F.cross_entropy(ref(x), y).backward()
    for n, w in weights.items():
        assert_describes(row(layers, n, "weight", f"{n}.weight"), w)
        assert_describes(row(layers, n, "grad_weight", f"{n}.weight"), w.grad)
    original = ref.a.parametrizations.weight.original
    assert_describes(row(layers, "a", "grad_param", "a.parametrizations.weight.original"), original.grad)


def test_a_module_called_twice_is_read_at_its_first_call(tmp_path: Path) -> None:
    batches = data((6,))
    torch.manual_seed(0)
    ref = copy.deepcopy(Twice())
    layers = probed_and_plain(Twice, batches, tmp_path)
    assert_every_parameter(layers, ref)
    h = torch.tanh(ref.inp(batches[0][0]))
    assert_describes(row(layers, "shared", "preact"), ref.shared(h))
    assert_describes(row(layers, "shared", "act"), torch.tanh(ref.shared(h)))
    assert sorted(layers[layers.quantity == "preact"].layer) == [1, 2, 3]


def test_torch_compile_is_probed_eagerly(tmp_path: Path) -> None:
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile is not available")
    batches = data((6,))
    torch.manual_seed(0)
    model = Twice()
    twin = copy.deepcopy(model)
    compiled = torch.compile(model, backend="eager")
    probe = initlab.probe(compiled, tmp_path, steps=[0, 2])
    fit(compiled, batches, probe)
    run = initlab.load_run(tmp_path)
    assert run.summary["status"] == "completed" and sorted(run.layers.step.unique()) == [0, 2]
    assert set(run.layers.name) == {"inp", "shared", "head"}  # named as in the module, not _orig_mod.inp
    x = batches[0][0]
    assert_describes(row(run.layers[run.layers.step == 0], "inp", "preact"), twin.inp(x))
    want = fit(twin, batches)
    for key, value in model.state_dict().items():
        assert torch.equal(value, want[key]), key


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_is_refused_at_attach_time(tmp_path: Path) -> None:
    scripted = torch.jit.script(Twice())
    with pytest.raises(UserError, match=r"cannot probe a torch.jit.script module .*before torch.jit.script"):
        initlab.probe(scripted, tmp_path / "run", every=1)
    assert not (tmp_path / "run").exists()


def test_a_no_grad_pass_inside_the_step_gives_way_to_the_training_pass(tmp_path: Path) -> None:
    model = Twice()
    (x, y), (x_eval, _) = data((6,), steps=2)
    probe = initlab.probe(model, tmp_path, steps=[0, 1])
    with pytest.warns(UserWarning, match="a pass without gradient") as caught:
        for step in range(2):
            with probe.step(step):
                with torch.no_grad():
                    model(x_eval)
                F.cross_entropy(model(x), y).backward()
            model.zero_grad()
    probe.close()
    assert sum("without gradient" in str(w.message) for w in caught) == 1
    layers = initlab.load_run(tmp_path).layers
    assert_describes(row(layers[layers.step == 0], "inp", "preact"), model.inp(x))  # the training batch's
    assert (layers[layers.step == 0].quantity == "grad_preact").sum() == 3


def test_every_step_of_an_inplace_dropout_model_keeps_act_whole(tmp_path: Path) -> None:
    """The first pass learns which captures change in place later; later passes copy them at capture."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = InvertedResidual()
        fit(model, data((4, 5, 5)), initlab.probe(model, tmp_path, every=1))
    act = initlab.load_run(tmp_path).layers.query("quantity == 'act'")
    assert sorted(act.step) == [0, 1, 2, 3] and (act.frac_zero < 0.05).all()


def test_a_step_without_gradient_reads_no_stale_grad(tmp_path: Path) -> None:
    """``.grad`` left from an earlier step is not this step's gradient: no gradient rows, one warning."""
    model = Twice()
    (x, y), (x_eval, _) = data((6,), steps=2)
    F.cross_entropy(model(x), y).backward()  # .grad of every parameter is set, and kept
    probe = initlab.probe(model, tmp_path, steps=[0])
    with pytest.warns(UserWarning, match="the probed pass had no gradient"), probe.step(0), torch.no_grad():
        model(x_eval)
    probe.close()
    layers = initlab.load_run(tmp_path).layers
    assert not layers.quantity.str.startswith("grad").any()
    assert {"preact", "weight", "param"} <= set(layers.quantity)


def test_exports_and_tensorboard_tags_keep_parameters_apart(tmp_path: Path) -> None:
    from initlab.export_tb import _layer_tag

    assert (
        _layer_tag("param", 2, "std", "encoder.self_attn.in_proj_bias")
        == "param/std/encoder.self_attn.in_proj_bias"
    )
    assert _layer_tag("preact", 2, "std", "") == "preact/std/layer02"


def test_a_lazy_parameter_never_materialized_is_named_in_the_coverage_warning(tmp_path: Path) -> None:
    model = Twice()
    model.unused = nn.LazyLinear(4)  # never called: its parameters have no size
    probe = initlab.probe(model, tmp_path, steps=[0])
    (x, y), *_ = data((6,), steps=1)
    with pytest.warns(UserWarning, match=r"probes see 99\.\d% of the parameters; left out: LazyLinear: not "):
        with probe.step(0):
            F.cross_entropy(model(x), y).backward()
    probe.close()
    summary = initlab.load_run(tmp_path).summary
    assert summary["param_coverage"] == pytest.approx(213 / 215)  # two lazy parameters count one each
    assert summary["params_left_out"] == {
        "not materialized (a lazy module before its first call)": ["LazyLinear"]
    }


def test_a_lazy_layer_is_a_layer_once_it_ran(tmp_path: Path) -> None:
    model = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, 3))
    probe = initlab.probe(model, tmp_path, steps=[0])
    (x, y), *_ = data((6,), steps=1)
    with probe.step(0):
        F.cross_entropy(model(x), y).backward()
    probe.close()
    layers = initlab.load_run(tmp_path).layers
    assert row(layers, "0", "act", "").n == 6 * 8 and row(layers, "0", "weight", "0.weight").n == 48


def test_a_compiled_model_is_refused_where_torch_cannot_run_it_eagerly(tmp_path: Path, monkeypatch) -> None:
    compiled = torch.compile(Twice(), backend="eager")
    monkeypatch.delattr(torch.compiler, "set_stance")
    with pytest.raises(UserError, match=r"cannot probe a torch.compile model .*expected torch >= 2.6"):
        initlab.probe(compiled, tmp_path / "run", every=1)
    assert not (tmp_path / "run").exists()


def test_a_weight_tied_between_two_layers_is_the_weight_of_both(tmp_path: Path) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.embed.weight

        def forward(self, tokens: Tensor) -> Tensor:
            return self.head(self.embed(tokens).mean(dim=1))

    probe = initlab.probe(Tied(), tmp_path, steps=[0])
    with probe.step(0):
        F.cross_entropy(probe.tracer.model(torch.tensor([[1, 2], [3, 4]])), torch.tensor([1, 2])).backward()
    probe.close()
    run = initlab.load_run(tmp_path)
    weights = run.layers[run.layers.quantity == "weight"]
    assert sorted(weights.param) == ["embed.weight", "head.weight"] and set(weights.n) == {40}
    assert run.summary["param_coverage"] == 1.0 and "param" not in set(run.layers.quantity)
