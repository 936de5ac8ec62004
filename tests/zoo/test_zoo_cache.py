"""The trained-model cache: atomic round trip, fingerprint check, corrupt files rejected."""

import json

import pytest
import torch

from cimtest.data import digits
from cimtest.exceptions import ModelError
from cimtest.fingerprint import content_digest, state_fingerprint
from cimtest.zoo import (
    SHIPPED,
    cache_dir,
    get_entry,
    is_trained,
    load_trained,
    model_paths,
    save_trained,
    train,
)
from cimtest.zoo.cache import metadata_text


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CIMTEST_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def saved(home):
    result = train("mlp-8", epochs=1, train_subset=100)
    save_trained(result)
    return result


def test_cache_dir_follows_cimtest_home(home):
    assert cache_dir() == home
    assert model_paths("mlp-8") == (home / "zoo" / "mlp-8.safetensors", home / "zoo" / "mlp-8.json")


def test_round_trip_keeps_the_fingerprint(saved, home):
    assert is_trained("mlp-8")
    assert sorted(p.name for p in (home / "zoo").iterdir()) == ["mlp-8.json", "mlp-8.safetensors"]
    model, meta = load_trained("mlp-8", train_if_missing=False)
    assert not model.training
    assert meta.pop("source") == "trained here"
    assert meta == saved.metadata
    assert state_fingerprint(model) == saved.metadata["fingerprint"]
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), saved.model(x))


def test_round_trip_of_the_fused_repvgg(home):
    entry_model = train("repvgg-a0-8", epochs=1, train_subset=8)
    save_trained(entry_model)
    model, meta = load_trained("repvgg-a0-8", train_if_missing=False)
    assert state_fingerprint(model) == meta["fingerprint"]


def test_missing_model_without_training_is_a_model_error(home):
    assert not is_trained("lenet5-8")
    with pytest.raises(ModelError, match="not trained"):
        load_trained("lenet5-8", train_if_missing=False)


def test_corrupt_weights_are_a_model_error(saved):
    weights, _ = model_paths("mlp-8")
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError, match="mlp-8.safetensors"):
        load_trained("mlp-8", train_if_missing=False)


def test_corrupt_metadata_is_a_model_error(saved):
    _, meta = model_paths("mlp-8")
    meta.write_text("{not json")
    with pytest.raises(ModelError, match="mlp-8.json"):
        load_trained("mlp-8", train_if_missing=False)


def test_fingerprint_mismatch_is_a_model_error(saved):
    _, meta = model_paths("mlp-8")
    data = json.loads(meta.read_text())
    data["fingerprint"] = "0" * 64
    meta.write_text(metadata_text(data))  # a consistent digest: the weights do not match
    with pytest.raises(ModelError, match="do not match the fingerprint"):
        load_trained("mlp-8", train_if_missing=False)


def test_edited_metadata_fails_its_digest(saved):
    _, meta = model_paths("mlp-8")
    data = json.loads(meta.read_text())
    data["value"] = 100.0
    meta.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="fails its digest check") as info:
        load_trained("mlp-8", train_if_missing=False)
    assert "\n" not in str(info.value)


def test_metadata_without_digest_loads_with_a_warning(saved, caplog):
    """An entry cached before digests: accepted, and the warning says how to add one."""
    _, meta = model_paths("mlp-8")
    data = json.loads(meta.read_text())
    del data["digest"]
    meta.write_text(json.dumps(data))
    assert load_trained("mlp-8", train_if_missing=False)[1]["name"] == "mlp-8"
    assert "no digest" in caplog.text and "cimtest zoo train mlp-8" in caplog.text


def test_unknown_name_is_a_model_error(home):
    with pytest.raises(ModelError, match="unknown zoo model"):
        load_trained("nope", train_if_missing=False)


def test_the_default_model_ships_with_the_package(home):
    """An empty cache still has resnet20-8: the shipped weights, fingerprint checked, with the
    test accuracy the README's demo table starts from."""
    assert is_trained("resnet20-8")
    assert model_paths("resnet20-8")[0].parent == SHIPPED
    shipped = json.loads(SHIPPED.joinpath("resnet20-8.json").read_text())
    assert shipped["digest"] == content_digest(shipped)
    assert shipped["fingerprint"].startswith("12efc8ed")
    assert SHIPPED.joinpath("resnet20-8.safetensors").stat().st_size < 2 * 2**20
    model, meta = load_trained("resnet20-8", train_if_missing=False)
    assert meta["source"] == "shipped"
    assert state_fingerprint(model) == meta["fingerprint"]
    test = digits(size=8).test
    with torch.no_grad():
        correct = (model(test.x).argmax(1) == test.y).sum().item()
    assert correct == 539  # 99.81 % of the 540 test images


def test_a_retrained_default_model_takes_precedence(home):
    save_trained(train("resnet20-8", epochs=1, train_subset=16))
    assert model_paths("resnet20-8")[0].parent == home / "zoo"
    assert load_trained("resnet20-8", train_if_missing=False)[1]["source"] == "trained here"


@pytest.mark.parametrize("name", ["cnn-mnist1d", "mlp-mnist1d", "lenet5-mnist", "resnet20-mnist"])
def test_the_other_data_sets_models_ship_and_score_what_they_say(name, home):
    """Shipped, fingerprint checked, and the accuracy their metadata records (on the full
    default test set) met on 5,000 MNIST-1D test samples (or MNIST's 1,500) within 4
    standard errors of a proportion."""
    from cimtest.data import builtin_splits

    assert model_paths(name)[0].parent == SHIPPED
    assert SHIPPED.joinpath(f"{name}.safetensors").stat().st_size < 2 * 2**20
    model, meta = load_trained(name, train_if_missing=False)
    assert meta["source"] == "shipped"
    entry = get_entry(name)
    test = builtin_splits(entry.dataset, entry.input_shape, test_size=5_000).test
    with torch.no_grad():
        accuracy = 100.0 * (model(test.x).argmax(1) == test.y).float().mean().item()
    p = meta["value"] / 100
    assert abs(accuracy - meta["value"]) < 4 * 100 * (p * (1 - p) / len(test)) ** 0.5
