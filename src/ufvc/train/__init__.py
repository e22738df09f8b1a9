"""Training: configs, data, the RD objective, the loop (see `ufvc train --help`)."""

from ufvc.train.config import TrainConfig, load_config
from ufvc.train.trainer import TrainResult, run_training

__all__ = ["TrainConfig", "TrainResult", "load_config", "run_training"]
