"""The fingerprint that decides whether a stage may reuse what an earlier run saved."""

import json

import pandas as pd

from psyco_utils import reuse

PAIRS = pd.DataFrame({"question": ["q1", "q2"], "chosen": ["good", "kind"], "rejected": ["bad", "rude"]})


def _key(model_dir, pairs=PAIRS, lr=1e-3, seed=0):
    return reuse.fingerprint("dpo", hyperparameters={"learning_rate": lr}, seed=seed,
                                      start_model=model_dir, data={"train": pairs})


def _model(tmp_path, weights=b"weights"):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(weights)
    return model


def test_the_fingerprint_changes_with_every_input(tmp_path):
    model = _model(tmp_path)
    key = _key(model)
    assert key == _key(model)  # deterministic
    changed_pair = PAIRS.assign(chosen=["good", "kinder"])
    assert len({key, _key(model, pairs=changed_pair), _key(model, lr=2e-3), _key(model, seed=1)}) == 4
    _model(tmp_path, b"other weights")
    assert _key(model) != key  # the starting model's bytes count, not its path
    assert reuse.model_digest("org/hub-model") == "hub:org/hub-model"


def test_a_record_is_used_only_with_its_fingerprint_and_its_model(tmp_path):
    model = _model(tmp_path)
    key = _key(model)
    assert reuse.load_record(tmp_path, key, model) is None  # nothing saved yet
    reuse.save_record(tmp_path, key, {"seconds": 1.5, "steps": 4})
    assert reuse.load_record(tmp_path, key, model) == {"fingerprint": key, "seconds": 1.5, "steps": 4}
    assert reuse.load_record(tmp_path, _key(model, lr=0.5), model) is None
    assert reuse.load_record(tmp_path, key, tmp_path / "missing_model") is None
    (tmp_path / reuse.RECORD_FILE).write_text('{"fingerprint": "' + key[:10])  # cut short by a kill
    assert reuse.load_record(tmp_path, key, model) is None
    reuse.save_record(tmp_path, key, {"seconds": 2.0})
    reuse.forget(tmp_path)  # a new training starts: the old record goes first
    assert not (tmp_path / reuse.RECORD_FILE).exists()
    assert json.loads(json.dumps(reuse.fingerprint("x", hyperparameters={}, seed=0, start_model=model,
                                                            data={"none": None}))) != key
