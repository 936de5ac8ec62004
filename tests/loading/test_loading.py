"""Model loading: module:factory with weights, .pt2 archives, and every error case."""

import logging
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from cimtest.exceptions import ModelError
from cimtest.fingerprint import state_fingerprint
from cimtest.loading import load_model, reload_model

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def tiny():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.Flatten(), nn.Linear(4 * 8 * 8, 10))

    def shaped():
        model = tiny()
        model.input_shape = (1, 8, 8)
        return model

    def not_a_module():
        return 3
    """
)


@pytest.fixture()
def factory(tmp_path, monkeypatch):
    (tmp_path / "tinymodels.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("tinymodels", None)
    return importlib.import_module("tinymodels")


def test_factory_with_safetensors_and_pt_weights(factory, tmp_path):
    model = factory.tiny()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    state = model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "w.pt")
    a = load_model("tinymodels:tiny", weights=tmp_path / "w.safetensors", input_shape=(1, 8, 8))
    b = load_model("tinymodels:tiny", weights=tmp_path / "w.pt", input_shape=(1, 8, 8))
    assert a.fingerprint == b.fingerprint == state_fingerprint(state)
    assert a.task == "classification" and a.output_shape == (10,) and a.num_classes == 10
    assert not a.module.training


def test_input_shape_from_module_attribute_and_missing_shape(factory):
    assert load_model("tinymodels:shaped").input_shape == (1, 8, 8)
    with pytest.raises(ModelError, match="input shape"):
        load_model("tinymodels:tiny")


def test_fingerprint_stable_across_save_and_load(factory, tmp_path):
    model = factory.tiny()
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    loaded = load_model("tinymodels:shaped", weights=tmp_path / "w.safetensors")
    assert loaded.fingerprint == state_fingerprint(model)


def test_export_archive(factory, tmp_path):
    model = factory.tiny().eval()
    batch = {0: torch.export.Dim("batch")}
    program = torch.export.export(model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=(batch,))
    torch.export.save(program, tmp_path / "m.pt2")
    static = torch.export.export(model, (torch.zeros(1, 1, 8, 8),))
    torch.export.save(static, tmp_path / "static.pt2")
    with pytest.raises(ModelError, match="dynamic batch"):
        load_model(str(tmp_path / "static.pt2"))
    loaded = load_model(str(tmp_path / "m.pt2"))
    assert loaded.input_shape == (1, 8, 8)
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(loaded.module(x), model(x), atol=1e-6)
    chip = {k: v * 1.5 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_file(chip, tmp_path / "chip.safetensors")
    other = load_model(str(tmp_path / "m.pt2"), weights=tmp_path / "chip.safetensors")
    model.load_state_dict(chip)
    assert other.fingerprint == state_fingerprint(model) != loaded.fingerprint
    assert torch.allclose(other.module(x), model(x), atol=1e-5)
    save_file({"0.weight": chip["0.weight"]}, tmp_path / "part.safetensors")
    with pytest.raises(ModelError, match="part.safetensors"):
        load_model(str(tmp_path / "m.pt2"), weights=tmp_path / "part.safetensors")


def test_reload_imports_no_factory_a_file_names(factory, tmp_path, monkeypatch):
    """A test's stored reference reloads a .pt2 archive, but a module:factory in it is refused
    before its module is imported: a crafted file could name any callable (``os:fork``)."""
    model = factory.tiny().eval()
    program = torch.export.export(model, (torch.zeros(2, 1, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "m.pt2")
    archive = load_model(str(tmp_path / "m.pt2"))
    assert reload_model(archive.reference()).fingerprint == archive.fingerprint
    (tmp_path / "sideeffect.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('imported').touch()\n"
        "def build():\n    raise AssertionError('called')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError, match="not imported"):
        reload_model({"spec": "sideeffect:build", "weights": None, "input_shape": [1, 8, 8]})
    assert not (tmp_path / "imported").exists()


def _bad(factory, tmp_path, mutate):
    state = dict(factory.tiny().state_dict())
    mutate(state)
    save_file(state, tmp_path / "bad.safetensors")
    return tmp_path / "bad.safetensors"


def test_weight_errors_name_the_layer(factory, tmp_path):
    def nan(state):
        state["0.weight"] = state["0.weight"].clone()
        state["0.weight"][0, 0, 0, 0] = float("nan")

    def missing(state):
        del state["4.bias"]

    def extra(state):
        state["5.weight"] = torch.zeros(1)

    def shape(state):
        state["4.weight"] = torch.zeros(10, 3)

    cases = [(nan, "0.weight.*NaN"), (missing, "missing.*4.bias"), (extra, "unexpected.*5.weight"),
             (shape, "shape mismatch.*4.weight")]
    for mutate, message in cases:
        path = _bad(factory, tmp_path, mutate)
        with pytest.raises(ModelError, match=message):
            load_model("tinymodels:shaped", weights=path)


def test_unreadable_files_and_bad_specs(factory, tmp_path, caplog):
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="junk.safetensors"):
        load_model("tinymodels:shaped", weights=tmp_path / "junk.safetensors")
    with pytest.raises(ModelError, match="does not exist"):
        load_model("tinymodels:shaped", weights=tmp_path / "absent.pt")
    with pytest.raises(ModelError, match="cannot import"):
        load_model("tinymodels:absent")
    with pytest.raises(ModelError, match="not a Module"):
        load_model("tinymodels:not_a_module")
    with pytest.raises(ModelError, match="unknown zoo model"):
        load_model("no-such-model")
    (tmp_path / "junk.pt2").write_bytes(b"zip? no")
    with caplog.at_level(logging.WARNING):  # torch logs a traceback unless silenced
        with pytest.raises(ModelError, match="junk.pt2"):
            load_model(str(tmp_path / "junk.pt2"))
        with pytest.raises(ModelError, match="absent.pt2' does not exist"):
            load_model(str(tmp_path / "absent.pt2"))
    assert not caplog.records


def test_pickled_objects_are_refused(factory, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"0.weight": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="evil.pt") as refused:
        load_model("tinymodels:shaped", weights=tmp_path / "evil.pt")
    message = str(refused.value)  # ours, in one line; not torch's advice to unpickle
    assert "\n" not in message and "never unpickles" in message
    assert "weights_only=False" not in message


def test_input_shape_from_a_first_linear_and_rank_errors(factory, tmp_path):
    """A first Linear gives (in_features,); a shape a convolution would read as unbatched
    is refused naming the layer; a factory is found in the current directory."""
    (tmp_path / "flat.py").write_text(
        "from torch import nn\n"
        "def mlp():\n    return nn.Sequential(nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))\n")
    assert load_model("flat:mlp").input_shape == (12,)
    with pytest.raises(ModelError, match=r"layer '0' \(Conv2d\) takes \(C, H, W\)"):
        load_model("tinymodels:tiny", input_shape=(1, 8))
    with pytest.raises(ModelError, match="--data or --input-shape C,H,W"):
        load_model("tinymodels:tiny")
    with pytest.raises(ModelError, match="1 to 3|\\(F\\), \\(C, L\\)"):
        load_model("tinymodels:tiny", input_shape=(1, 1, 8, 8))


def test_factory_is_imported_from_the_current_directory(tmp_path, monkeypatch):
    import sys

    (tmp_path / "herefactory.py").write_text(
        "from torch import nn\ndef mlp():\n    return nn.Linear(3, 2)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert load_model("herefactory:mlp").input_shape == (3,)
    assert str(tmp_path) not in sys.path
