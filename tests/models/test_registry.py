"""Model names and ids are stable, models build deterministically, digests identify weights."""

from __future__ import annotations

import pytest
import torch

from ufvc.errors import InputFormatError
from ufvc.models.registry import (
    CodecModel,
    create_model,
    get_model_spec,
    list_models,
    model_name_for_id,
    register_model,
)

STABLE_IDS = {"dcvc-uf-ld": 1, "dcvc-uf-hts": 2, "dcvc-uf-htl": 3, "ufvc-s": 16, "ufvc-tiny": 250}
OFFICIAL_VIDEO_PARAMETERS = {
    "dcvc-uf-ld": 9_650_176,
    "dcvc-uf-hts": 81_157_632,
    "dcvc-uf-htl": 120_538_368,
}


def test_model_names_and_ids_are_stable():
    assert list_models() == list(STABLE_IDS)
    for name, model_id in STABLE_IDS.items():
        assert get_model_spec(name).model_id == model_id
        assert model_name_for_id(model_id) == name


def test_unknown_name_or_id_is_an_input_error_listing_the_models():
    with pytest.raises(InputFormatError, match="dcvc-uf-hts"):
        get_model_spec("dcvc-uf-xl")
    with pytest.raises(InputFormatError, match="model id 99"):
        model_name_for_id(99)


def test_register_model_refuses_a_taken_name_or_id():
    spec = get_model_spec("ufvc-tiny")

    def configs():
        return spec.intra, spec.video

    with pytest.raises(ValueError, match="already registered"):
        register_model("ufvc-tiny", model_id=200)(configs)
    with pytest.raises(ValueError, match="taken"):
        register_model("ufvc-tiny-copy", model_id=250)(configs)
    assert "ufvc-tiny-copy" not in list_models()


@pytest.mark.parametrize("name", sorted(OFFICIAL_VIDEO_PARAMETERS))
def test_official_structures_have_the_release_parameter_counts(name):
    spec = get_model_spec(name)
    with torch.device("meta"):
        model = CodecModel(spec.name, spec.model_id, spec.intra, spec.video)
    assert sum(p.numel() for p in model.intra.parameters()) == 42_179_328
    assert sum(p.numel() for p in model.video.parameters()) == OFFICIAL_VIDEO_PARAMETERS[name]


@pytest.mark.parametrize("name", [n for n in list_models() if get_model_spec(n).weights is None])
def test_recipe_digest_in_the_registry_is_the_built_models(name):
    # A decoder refuses a stream of other weights by this digest before building the model.
    assert create_model(name).weights_digest().hex() == get_model_spec(name).recipe_digest


def test_untrained_model_is_deterministic_across_builds():
    first, second = create_model("ufvc-tiny"), create_model("ufvc-tiny")
    assert first.weights_source == "recipe (untrained)"
    assert first.weights_digest() == second.weights_digest()
    assert len(first.weights_digest()) == 16
    for (key, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(),
                                strict=True):
        assert torch.equal(a, b), key
    assert not first.training


def test_digest_changes_with_any_weight_and_not_with_precision():
    model = create_model("ufvc-tiny")
    digest = model.weights_digest()
    assert model.double().weights_digest() == digest  # float32 values hashed
    with torch.no_grad():
        model.video.q_feature[5, 3] += 1e-3
    assert model.weights_digest() != digest


def test_digest_differs_between_models():
    assert create_model("ufvc-tiny").weights_digest() != create_model("ufvc-s").weights_digest()
