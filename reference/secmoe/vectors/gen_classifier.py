"""Vector table of spec §60's classifier (local): the configuration, the client's
normalisation, the float and fixed-point logits (and the ablated ones of §60.5.1) of the
committed digits models on three test samples, the file's save/load round trip, and the data
sets' train/test split.

The models are the committed files of §60.2 (``inputs.model``, with their SHA-256, which the
generator checks); the samples' raw features are in the case, so a consumer needs neither
scikit-learn nor the data set.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from secmoe.accuracy import check_arch, classify_client, classify_server
from secmoe.errors import Party, SpecError
from secmoe.model.ablation import APPROXIMATIONS, classifier_fixed_ablated
from secmoe.model.classifier import (
    ClassifierConfig,
    arch_config,
    classifier_fixed,
    classifier_float,
    encode_head,
    load_classifier,
    model_path,
    predict,
    preprocess,
    save_classifier,
)
from secmoe.model.datasets import load_dataset, split_indices
from secmoe.model.fixed import encode_weights
from secmoe.session import PartyContext
from secmoe.vectors.build import hex_ring
from secmoe.vectors.gen_float import reals
from secmoe.vectors.play import NORMAL, CaseSpec, Group, Play, table_file
from secmoe.vectors.registry import Json, Note

PROTOCOL = "model.classifier"
SAMPLES = 3  # the first test samples of digits
# The sets of approximations swapped for exact functions (§60.5.1); the empty set is
# classifier_fixed itself.
ABLATIONS = (("activation",), ("exp", "reciprocal"), APPROXIMATIONS)
SIZES = {"digits": 1797, "iris": 150, "wine": 178, "breast_cancer": 569}
REFUSED = Note("INVALID", "an input the algorithm must refuse with SpecError")
Fn = tuple[Json, Json | None]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _committed(inputs: Json) -> Path:
    """The committed model file a case names, checked against its SHA-256."""
    dataset, arch = inputs["model"].split("-")
    path = model_path(dataset, check_arch(arch))
    if _sha256(path) != inputs["model_sha256"]:
        raise SpecError(f"{path} is not the committed model the vector names")
    return path


def _features(v: Json) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(v["f64"]), "<f8").reshape(v["shape"]).copy()


def _classify(inputs: Json) -> Fn:
    config, weights = load_classifier(_committed(inputs))
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved.safetensors"
        save_classifier(saved, config, weights)
        saved_sha = _sha256(saved)
    x = preprocess(config, weights, _features(inputs["features"]))
    fxp = config.moe.fxp
    xe = fxp.encode(x)
    float_logits = classifier_float(config, weights, x)
    fixed = classifier_fixed(config, weights, xe)
    return {
        "config": config.as_dict(),
        "saved_sha256": saved_sha,
        "x": reals(x),
        "logits_float": reals(float_logits),
        "logits_fixed": hex_ring(fxp.ring, fixed),
        "predict_float": predict(float_logits).tolist(),
        "predict_fixed": predict(fxp.ring.to_signed(fixed)).tolist(),
        "ablated": {
            ",".join(s): hex_ring(
                fxp.ring, classifier_fixed_ablated(config, weights, xe, frozenset(s))
            )
            for s in ABLATIONS
        },
    }, None


def _local(inputs: Json, params: Json) -> Fn:
    algorithm = params["algorithm"]
    if algorithm == "classifier":
        return _classify(inputs)
    if algorithm == "split_indices":
        train, test = split_indices(inputs["name"], inputs["n"])
        return {"n_train": int(train.size), "test": test.tolist()}, None
    arch = inputs["arch"]
    config = ClassifierConfig(
        inputs["dataset"], arch, inputs["n_features"], inputs["n_classes"], arch_config(arch)
    )
    return {"config": config.as_dict()}, None


def _refused(cid: str, what: str, base: str, inputs: Json) -> CaseSpec:
    error = {"kind": "spec_error", "party": None, "label": ""}
    return CaseSpec(cid, what, inputs, ("Refused",), base_id=base, error=error)


def _groups() -> list[Group]:
    data = load_dataset("digits")
    features = reals(data.x_test[:SAMPLES])
    models = []
    for arch in ("switch", "mixtral"):
        name = f"digits-{arch}"
        inputs = {
            "model": name,
            "model_sha256": _sha256(model_path("digits", arch)),
            "features": features,
        }
        what = f"the committed {name} model on the first {SAMPLES} digits test samples"
        models.append(CaseSpec(f"{PROTOCOL}/classifier/{name}", what, inputs))
    splits = [
        CaseSpec(f"{PROTOCOL}/split_indices/{name}", f"the split of {name}", {"name": name, "n": n})
        for name, n in SIZES.items()
    ]
    c = f"{PROTOCOL}/config"
    base = {"dataset": "digits", "arch": "switch", "n_features": 64, "n_classes": 10}
    configs = [
        CaseSpec(f"{c}/digits-switch", "digits, switch", base),
        CaseSpec(
            f"{c}/iris-mixtral",
            "iris, mixtral",
            {**base, "dataset": "iris", "arch": "mixtral", "n_features": 4, "n_classes": 3},
        ),
        _refused(
            f"{c}/dataset",
            "an unknown data set",
            f"{c}/digits-switch",
            {**base, "dataset": "mnist"},
        ),
        _refused(
            f"{c}/arch", "an unknown architecture", f"{c}/digits-switch", {**base, "arch": "dbrx"}
        ),
        _refused(
            f"{c}/features",
            "more features than d_model",
            f"{c}/digits-switch",
            {**base, "n_features": 65},
        ),
        _refused(f"{c}/classes", "one class", f"{c}/digits-switch", {**base, "n_classes": 1}),
    ]
    return [
        Group({"algorithm": "classifier"}, models),
        Group({"algorithm": "split_indices"}, splits),
        Group({"algorithm": "ClassifierConfig"}, configs),
    ]


table_file(
    PROTOCOL,
    "model/classifier.json",
    section="60.1.4",
    anchor="spec/60-accuracy.md#classifier_fixed",
    params={"ring_bits": 64, "frac_bits": 18},
    header=[
        "The classifier of spec 60 (local), one group per algorithm (params.algorithm).",
        "classifier: inputs.model names the committed file reference/secmoe/model/trained/",
        "{model}.safetensors (model_sha256: its SHA-256), features the raw features of the first",
        "3 digits test samples (binary64) -> config (ClassifierConfig.as_dict), saved_sha256",
        "(save_classifier of load_classifier's result: the same bytes), x (preprocess),",
        "logits_float (classifier_float), logits_fixed (classifier_fixed, ring-vec hex),",
        "predict_float, predict_fixed, and ablated: classifier_fixed_ablated per set of exact",
        "functions (its key, comma-separated). split_indices: name, n -> n_train and the test",
        "indices. ClassifierConfig: dataset, arch, n_features, n_classes -> as_dict, or refused.",
    ],
    notes={"Normal": NORMAL, "Refused": REFUSED},
    fn=_local,
    groups=_groups,
)


# --- the secure run (spec §60.3): two-party, one sample ----------------------------------------

CLASSIFY = "accuracy.classify"


def _classify_player(case: Json, params: Json) -> Play:
    inputs = case["inputs"]
    c = inputs["config"]
    config = ClassifierConfig(
        c["dataset"], c["arch"], c["n_features"], c["n_classes"], arch_config(c["arch"])
    )
    fxp = config.moe.fxp
    x = _features(inputs["client"]["x"])
    _, weights = load_classifier(_committed(inputs["server"]))
    fw, head = encode_weights(config.moe, weights.moe), encode_head(config, weights)

    def client(ctx: PartyContext) -> list[np.ndarray]:
        return classify_client(ctx, config, [x])

    def encode(party: Party, out: object) -> Json:
        if party == "server":
            return {"served": out}
        assert isinstance(out, list)
        return {"logits": [hex_ring(fxp.ring, b) for b in out]}

    return Play(fxp, client, lambda ctx: classify_server(ctx, config, fw, head), encode)


def _classify_groups() -> list[Group]:
    arch = check_arch("switch")
    path = model_path("digits", arch)
    config, weights = load_classifier(path)
    x = preprocess(config, weights, load_dataset("digits").x_test[:1])
    inputs = {
        "config": config.as_dict(),
        "client": {"x": reals(x)},
        "server": {"model": f"digits-{arch}", "model_sha256": _sha256(path)},
    }
    what = "the committed digits-switch model, one batch of the first test sample"
    return [Group({"batches": [1]}, [CaseSpec(f"{CLASSIFY}/digits-{arch}", what, inputs)])]


table_file(
    CLASSIFY,
    "accuracy/classify.json",
    section="60.3.1",
    anchor="spec/60-accuracy.md#classify_client",
    params={"ring_bits": 64, "frac_bits": 18},
    header=[
        "The secure classifier run (spec 60.3): classify_client and classify_server over one",
        "batch (group params.batches: the batch sizes) then the end (classify/tokens with 0).",
        "inputs.config: the ClassifierConfig (as_dict); inputs.client.x: the preprocessed",
        "samples (binary64, (T, d_model)); inputs.server: the committed model file",
        "reference/secmoe/model/trained/{model}.safetensors and its SHA-256 (its weights",
        "encoded). Outputs: the client's logits per batch (ring-vec hex, equal to",
        "classifier_fixed); the server's count of samples served. Payloads over 1024 bytes:",
        "their SHA-256.",
    ],
    notes={"Normal": NORMAL},
    player=_classify_player,
    groups=_classify_groups,
)
