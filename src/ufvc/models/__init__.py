"""The DCVC-UF networks: intra codec, chunk video codec, model registry and checkpoints.

    from ufvc.models import create_model
    model = create_model("dcvc-uf-hts")      # model.intra (IntraCodec), model.video (ChunkCodec)
"""

from ufvc.models.registry import (
    CodecModel,
    create_model,
    get_model_spec,
    list_models,
    load_model_file,
    register_model,
)

__all__ = [
    "CodecModel",
    "create_model",
    "get_model_spec",
    "list_models",
    "load_model_file",
    "register_model",
]
