"""The training loop: stages, mixed precision, distributed data parallel, checkpoints,
validation, the CSV log and the export of the trained model.

    config = load_config("configs/ufvc-s.toml")
    result = run_training(config, out_dir=Path("runs/ufvc-s"))

Run it under `torchrun --nproc_per_node K` for K processes (gloo on CPU, NCCL on CUDA);
process 0 logs, validates, checkpoints and exports, and every process draws its own
samples. Stage by stage only the codec being trained gets gradients: an intra stage
trains the intra codec; a video stage trains the chunk codec with the intra codec frozen.
With `ema_decay` set, a moving average of the weights (`ufvc.train.averaging`) is kept
beside them: validation measures both, checkpoints keep both, and the export holds the
average unless a validation at the last step found the run's own weights better (for
the export of a checkpoint, `export_checkpoint`, the validations the run's log holds at
the checkpoint's step decide).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ufvc.codec.options import PRECISION_DTYPES
from ufvc.errors import CheckpointError, InputFormatError
from ufvc.eval.bdrate import RdCurve, bd_rate
from ufvc.models import checkpoint as model_files
from ufvc.models.registry import CodecModel, get_model_spec, shipped_weights_path
from ufvc.train.averaging import WeightAverage
from ufvc.train.config import ModelSpec, StageConfig, TrainConfig
from ufvc.train.data import (
    PreparedSource,
    SequenceDataset,
    StepSampler,
    prepare_sources,
    validation_sequences,
)
from ufvc.train.losses import RDTerms, default_frame_weights, lambda_table, yuv_psnr
from ufvc.train.objective import IntraObjective, SequenceObjective, frames_to_model_input
from ufvc.train.rounding import StorageRounding
from ufvc.train.runlog import CsvLog, read_log
from ufvc.train.sources import FrameCache
from ufvc.train.state import (
    capture_rng,
    load_checkpoint,
    make_checkpoint,
    restore_rng,
    save_atomic,
)

LOG_NAME = "train_log.csv"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"


@dataclass
class TrainResult:
    """What a call of `run_training` did."""

    out_dir: Path
    step: int  # global steps done
    finished: bool  # every stage ran to its end
    log_path: Path
    checkpoint: Path | None
    export: Path | None
    validation: dict[str, float] | None  # the last validation (means over its qps)
    model: CodecModel  # the trained model (this process's copy)


@dataclass(frozen=True)
class LrSchedule:
    """Learning-rate factor per step of a stage (a picklable LambdaLR function)."""

    steps: int
    kind: str
    warmup_steps: int
    min_ratio: float
    milestones: tuple[float, ...]
    gamma: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            passed = sum(step >= round(m * self.steps) for m in self.milestones)
            return self.gamma**passed
        span = max(1, self.steps - 1 - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_schedule(stage: StageConfig) -> LrSchedule:
    return LrSchedule(stage.steps, stage.lr_schedule, stage.warmup_steps, stage.min_lr_ratio,
                      stage.step_milestones, stage.step_gamma)


def resolve_device(name: str) -> torch.device:
    """"auto" is CUDA when available, else the CPU; under torchrun each process takes the
    GPU of its local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputFormatError("device cuda asked for, but torch sees no CUDA device")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    elif device.type != "cpu":
        raise InputFormatError(f"device must be auto, cpu or cuda, got {name!r}")
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels on this CPU (AVX-512 or AMX). Without them
    bfloat16 autocast is emulated: 3-4x slower than float32 on an AVX2 EPYC."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe is not None and probe())


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: float32). "auto" is bf16 where the device runs it fast
    (fp16 on GPUs without bf16, float32 on CPUs without bf16 kernels)."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    if precision == "fp16" and device.type != "cuda":
        raise InputFormatError("precision fp16 needs a CUDA device (use bf16 on the CPU)")
    return None if precision == "fp32" else PRECISION_DTYPES[precision]


def _replace_config(base: Any, changes: dict[str, Any], what: str) -> Any:
    if not changes:
        return base
    data = model_files.config_to_data(base)
    unknown = sorted(set(changes) - set(data))
    if unknown:
        raise InputFormatError(f"model.{what}: unknown field {unknown[0]!r}")
    data.update(changes)
    return model_files.config_from_data(type(base), data, source=f"model.{what}")


def build_model(spec: ModelSpec) -> CodecModel:
    """The model a run starts from (see `ModelSpec`), on the CPU."""
    registered = get_model_spec(spec.name)
    intra = _replace_config(registered.intra, spec.intra, "intra")
    video = _replace_config(registered.video, spec.video, "video")
    # Built without initialising: every branch below assigns all weights.
    with torch.device("meta"):
        model = CodecModel(registered.name, registered.model_id, intra, video)
    if spec.init == "recipe":
        model.load_recipe_weights()
        return model
    if spec.init == "shipped":
        path = shipped_weights_path(registered)
        if path is None:
            raise InputFormatError(f"model {spec.name!r} has no shipped weights to start from")
    else:
        path = Path(spec.init)
    # A .ufvm of another structure than the (possibly changed) configs is a CheckpointError.
    model.load_ufvm(model_files.read_ufvm(path), source=str(path))
    return model


class _Distributed:
    """Rank and world size; initialises the process group under torchrun."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.started_here = False
        if self.world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.started_here = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        if self.world == 1:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def close(self) -> None:
        if self.started_here:
            dist.destroy_process_group()


def _worker_init(_: int) -> None:
    # Workers resample and crop; a single thread each keeps them off the training threads.
    torch.set_num_threads(1)


class _Meter:
    """Sums of per-step batch means over one logging interval."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(6, dtype=torch.float64, device=self.device)
        self.started = time.perf_counter()

    def add(self, terms: RDTerms) -> None:
        mse = terms.plane_mse.detach().mean(0).double()
        values = torch.stack((terms.loss.detach().mean().double(),
                              terms.bpp.detach().mean().double(), *mse,
                              torch.ones((), dtype=torch.float64, device=self.device)))
        self.sums += values

    def means(self, group: _Distributed) -> tuple[dict[str, float], int]:
        sums = group.all_reduce_sum(self.sums.clone())
        count = float(sums[5])
        mean = (sums / max(count, 1.0)).cpu()
        return {"loss": float(mean[0]), "bpp": float(mean[1]),
                "psnr": float(yuv_psnr(mean[2:5].float()))}, int(count)


class Trainer:
    """One training run; `run_training` is the usual entry point."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        out_dir: Path,
        device: str | None = None,
        max_steps: int | None = None,
        max_seconds: float | None = None,
        progress: bool = False,
        config_table: dict | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.out_dir = out_dir
        self.device = resolve_device(device or config.device)
        self.autocast_dtype = resolve_precision(config.precision, self.device)
        self.group = _Distributed(self.device)
        self.progress = progress and self.group.main
        self.config_table = config_table or {}
        self.base_dir = base_dir
        total = config.total_steps
        self.stop_step = total if max_steps is None else min(total, max_steps)
        self.step = 0
        self.elapsed_before = 0.0
        self.started = time.perf_counter()
        # A time budget (a GPU lease, the end of a session): the run checkpoints and
        # exports when it is spent, and --resume goes on from there.
        self.deadline = None if max_seconds is None else self.started + max_seconds
        self.last_validation: dict[str, float] | None = None
        self.live_validation: dict[str, float] | None = None  # the own weights, beside an average
        self.last_curve: RdCurve | None = None  # rate-PSNR over the validation qps
        self.live_curve: RdCurve | None = None
        self.average: WeightAverage | None = None
        self.rounding: StorageRounding | None = None
        self.last_validation_key: tuple | None = None
        self.cache = FrameCache(config.data.cache_dir)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")

    # ------------------------------------------------------------------ setup

    def _prepare(self, sources: tuple) -> list[PreparedSource]:
        """Prepare sources, decoding videos into the cache once per machine (local rank 0
        first, the others then find the cache filled)."""
        if self.group.local_rank != 0:
            self.group.barrier()
        prepared = prepare_sources(sources, self.cache, base=self.base_dir)
        if self.group.local_rank == 0:
            self.group.barrier()
        return prepared

    def _seed(self) -> None:
        seed = self.config.seed * 1000 + self.group.rank
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)

    @property
    def chunk_size(self) -> int:
        return self.model.video.config.frames

    def _frame_weights(self) -> tuple[float, ...]:
        weights = self.config.loss.frame_weights or default_frame_weights(self.chunk_size)
        if len(weights) != self.chunk_size:
            raise InputFormatError(
                f"loss.frame_weights has {len(weights)} values; the model codes chunks of "
                f"{self.chunk_size} frames"
            )
        return weights

    def _objective(self, stage: StageConfig) -> nn.Module:
        loss = self.config.loss
        self.model.requires_grad_(False)
        if stage.kind == "intra":
            self.model.intra.requires_grad_(True)
            objective: nn.Module = IntraObjective(self.model.intra,
                                                  lambda_table(*loss.image_lambda))
        else:
            self.model.video.requires_grad_(True)
            objective = SequenceObjective(
                self.model.intra, self.model.video, lambda_table(*loss.video_lambda),
                self._frame_weights(), grad_checkpoint=stage.use_grad_checkpoint(),
            )
        return objective.to(self.device)

    def _num_workers(self) -> int:
        setting = self.config.data.num_workers
        if setting != "auto":
            return int(setting)
        if self.device.type != "cuda":
            return 0  # on a CPU the workers would take cores from the training threads
        return max(1, min(8, (os.cpu_count() or 2) // self.group.world - 1))

    def _loader(self, stage: StageConfig, index: int, first: int, end: int) -> DataLoader:
        chosen = [s for s in self.sources if not stage.sources or s.label in stage.sources]
        dataset = SequenceDataset(
            chosen, self.cache, length=stage.sequence_length(self.chunk_size), crop=stage.crop,
            seed=self.config.seed, stream=index, qp_range=self.config.loss.qp_range,
            qp_choices=self.config.loss.qp_choices,
            flips=self.config.data.flips, reverse=self.config.data.reverse,
        )
        sampler = StepSampler(stage.batch_size, start_step=first, end_step=end,
                              rank=self.group.rank, world=self.group.world)
        workers = self._num_workers()
        return DataLoader(
            dataset, batch_size=stage.batch_size, sampler=sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", worker_init_fn=_worker_init,
            # An own generator: creating the loader must not draw from the global RNG,
            # or a resumed run would see different training noise.
            generator=torch.Generator().manual_seed(self.config.seed),
            prefetch_factor=4 if workers else None,
        )

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint_dir(self) -> Path:
        return self.out_dir / CHECKPOINT_DIR

    def _save(self, stage_index: int, stage_step: int, batch: int, optimizer, scheduler,
              scaler) -> None:
        rng = self.group.gather(capture_rng())
        if not self.group.main:
            return
        payload = make_checkpoint(
            model_state=self.model.state_dict(),
            optimizer_state=optimizer.state_dict(),
            scheduler_state=scheduler.state_dict(),
            scaler_state=scaler.state_dict() if scaler.is_enabled() else None,
            step=self.step, stage_index=stage_index, stage_step=stage_step,
            samples=stage_step * batch * self.group.world, rng_states=rng,
            elapsed=self._elapsed(), config=self.config_table,
        )
        if self.average is not None:
            payload["ema"] = self.average.state_dict()
        folder = self._checkpoint_dir()
        numbered = folder / f"step_{self.step:08d}.pt"
        save_atomic(payload, numbered)
        last = folder / LAST_CHECKPOINT
        tmp = folder / f".{LAST_CHECKPOINT}.partial"
        tmp.unlink(missing_ok=True)
        try:
            os.link(numbered, tmp)
        except OSError:
            shutil.copyfile(numbered, tmp)
        os.replace(tmp, last)
        old = sorted(folder.glob("step_*.pt"))
        for path in old[: max(0, len(old) - self.config.keep_checkpoints)]:
            path.unlink()

    def _resume_state(self) -> dict[str, Any]:
        path = self._checkpoint_dir() / LAST_CHECKPOINT
        state = load_checkpoint(path)
        saved = state.get("config", {})
        for key in ("model", "seed"):
            if key in saved and key in self.config_table and saved[key] != self.config_table[key]:
                raise CheckpointError(
                    f"{path} was written with another {key!r} setting; resume with the "
                    f"config it was trained with, or start a new run in another folder"
                )
        if len(state["rng"]) != self.group.world:
            raise CheckpointError(
                f"{path} was written by {len(state['rng'])} processes; resume with as many "
                f"(this run has {self.group.world})"
            )
        self.model.load_state_dict(state["model"])
        self.average = self._make_average()
        if self.average is not None and "ema" in state:
            self.average.load_state_dict(state["ema"])
        self.step = int(state["step"])
        self.elapsed_before = float(state["elapsed"])
        return state

    def _make_average(self) -> WeightAverage | None:
        """The weight average of the model as it is now (None when the config keeps none)."""
        return WeightAverage(self.model, self.config.ema_decay) if self.config.ema_decay else None

    def _averaged(self) -> AbstractContextManager:
        """A block in which the model holds the averaged weights, when there are any."""
        return self.average.applied() if self.average is not None else nullcontext()

    def _rounded(self) -> AbstractContextManager:
        """A block in which the convolution weights hold what the model file will store."""
        return self.rounding.applied() if self.rounding is not None else nullcontext()

    def _elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    # ------------------------------------------------------------------ validation

    def _validate(self, stage: StageConfig) -> None:
        settings = self.config.validation
        if not settings.sources or not self.group.main:
            return
        length = stage.sequence_length(self.chunk_size) if stage.kind == "intra" else (
            1 + settings.chunks * self.chunk_size)
        key = (stage.kind, length)
        if self.last_validation_key == (self.step, key):
            return  # the previous stage ended with this very validation
        self.last_validation_key = (self.step, key)
        with self._averaged(), self._rounded():
            per_qp = self._validation_losses(stage, key, length)
        elapsed = self._elapsed()
        self.last_validation, self.last_curve = self._log_validation(
            stage, "val", per_qp, elapsed)
        if self.average is not None:
            # The run's own weights too: how far the average is ahead of them.
            with self._rounded():
                live = self._validation_losses(stage, key, length)
            self.live_validation, self.live_curve = self._log_validation(
                stage, "val_live", live, elapsed)

    def _log_validation(self, stage: StageConfig, split: str, per_qp: list[tuple],
                        elapsed: float) -> tuple[dict, RdCurve]:
        """Log one validation's per-qp rows ("<split>_qpNN") and summary row ("<split>");
        returns the summary and the rate-PSNR curve of its qps."""
        points = []
        for qp, loss, bpp, mse in per_qp:
            psnr = float(yuv_psnr(mse))
            points.append((bpp, psnr))
            self.log.write(step=self.step, stage=stage.name, split=f"{split}_qp{qp}",
                           loss=loss, bpp=bpp, psnr=psnr, time=elapsed)
        summary = _summarise(per_qp)
        self.log.write(step=self.step, stage=stage.name, split=split, time=elapsed, **summary)
        return ({"stage": stage.name, "step": self.step, **summary},
                RdCurve.from_points(*zip(*points, strict=True)))

    def _validation_losses(self, stage: StageConfig, key: tuple, length: int) -> list[tuple]:
        """(qp, loss, bpp, plane MSEs) of the validation set under the model's weights."""
        settings = self.config.validation
        if self.config.portable:
            self.model.make_portable()  # integer weights from the current weights
        if key not in self.validation_sets:
            sequences = validation_sequences(
                self.validation_sources, self.cache, length=length, crop=settings.crop,
                max_samples=settings.max_samples, seed=self.config.seed,
            )
            self.validation_sets[key] = torch.from_numpy(np.stack(sequences))
        frames = self.validation_sets[key]
        objective = self._objective(stage)
        objective.eval()
        per_qp = []
        devices = [self.device] if self.device.type == "cuda" else []
        # Validation runs in float32 so its numbers do not depend on the training precision;
        # it draws no random numbers, and fork_rng guards the training stream regardless.
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            for qp in settings.qps:
                sums = torch.zeros(5, dtype=torch.float64)
                for start in range(0, len(frames), settings.batch_size):
                    x = frames_to_model_input(frames[start : start + settings.batch_size]
                                              .to(self.device))
                    qps = torch.full((x.shape[0],), qp, dtype=torch.long, device=self.device)
                    terms = objective(x, qps)
                    sums[0] += float(terms.loss.sum())
                    sums[1] += float(terms.bpp.sum())
                    sums[2:] += terms.plane_mse.double().sum(0).cpu()
                mean = sums / len(frames)
                per_qp.append((qp, float(mean[0]), float(mean[1]), mean[2:].float()))
        self.model.train()
        return per_qp

    # ------------------------------------------------------------------ the loop

    def _run_stage(self, index: int, stage: StageConfig, stage_start: int,
                   resume: dict[str, Any] | None, rng: dict[str, Any] | None,
                   bar: tqdm) -> None:
        """Run steps of one stage. `resume` holds the optimizer states of a checkpoint
        written inside this stage; `rng` the random states to restore before the first
        step (any resumed run)."""
        objective = self._objective(stage)
        params = [p for p in objective.parameters() if p.requires_grad]
        wrapped: nn.Module = objective
        if self.group.world > 1:
            wrapped = DistributedDataParallel(
                objective, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,
                # Some modules sit out some stages (adaptor M with one chunk per sequence).
                find_unused_parameters=True,
            )
        optimizer = torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay,
                                      fused=self.device.type == "cuda")
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(stage))
        scaler = torch.amp.GradScaler(self.device.type,
                                      enabled=self.autocast_dtype == torch.float16)
        first = self.step - stage_start
        end = min(stage.steps, self.stop_step - stage_start)
        if resume is not None:
            optimizer.load_state_dict(resume["optimizer"])
            # The config's schedule governs a resumed stage (it may now be longer or have
            # another lr): LambdaLR's saved state would bring back the old one's length.
            schedule = lr_schedule(stage)
            for group in optimizer.param_groups:
                group["initial_lr"] = stage.lr
                group["lr"] = stage.lr * schedule(first)
            scheduler.base_lrs = [stage.lr] * len(optimizer.param_groups)
            scheduler.last_epoch = first
            if resume.get("scaler") and scaler.is_enabled():
                scaler.load_state_dict(resume["scaler"])
        elif first == 0:
            self._validate(stage)
        loader = self._loader(stage, index, first, end)
        if rng is not None:
            # Last, so nothing between here and the first step draws from the restored state.
            restore_rng(rng)
        meter = _Meter(self.device)
        autocast = torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                  enabled=self.autocast_dtype is not None)
        bar.set_description(stage.name)
        for frames, qp in loader:
            x = frames_to_model_input(frames.to(self.device, non_blocking=True))
            qp = qp.to(self.device, non_blocking=True)
            # The gradients at the stored weights update the float ones (straight-through).
            with self._rounded():
                with autocast:
                    terms = wrapped(x, qp)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(terms.loss.mean()).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, stage.clip_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if self.average is not None:
                self.average.update()
            self.step += 1
            stage_step = self.step - stage_start
            meter.add(terms)
            bar.update(1)
            if self.step % self.config.log_every == 0 or stage_step == end:
                self._log_train(stage, meter, optimizer, bar)
            if self.step % self.config.checkpoint_every == 0 or stage_step == end:
                self._save(index, stage_step, stage.batch_size, optimizer, scheduler, scaler)
            if stage_step == stage.steps or self.step % self.config.validation.every == 0:
                self._validate(stage)
            if self.deadline is not None and time.perf_counter() > self.deadline:
                if stage_step != end:
                    self._log_train(stage, meter, optimizer, bar)
                    self._save(index, stage_step, stage.batch_size, optimizer, scheduler, scaler)
                self.stop_step = self.step
                return

    def _log_train(self, stage: StageConfig, meter: _Meter, optimizer, bar: tqdm) -> None:
        seconds = time.perf_counter() - meter.started
        means, steps = meter.means(self.group)
        meter.reset()
        if not self.group.main:
            return
        rate = steps * stage.batch_size * self.group.world / max(seconds, 1e-9)
        self.log.write(step=self.step, stage=stage.name, split="train",
                       lr=float(optimizer.param_groups[0]["lr"]), time=self._elapsed(),
                       samples_per_s=rate, **means)
        bar.set_postfix(loss=f"{means['loss']:.4g}", bpp=f"{means['bpp']:.4f}",
                        psnr=f"{means['psnr']:.2f}")

    def _export(self, finished: bool, weights: str = "chosen") -> Path | None:
        """Write the better-validated weights to OUT/<export>, or with `weights` "average"
        or "own" those weights to OUT/<export stem>-<weights>.ufvm, beside it."""
        if not self.group.main or not self.config.export:
            return None
        path = self.out_dir / self.config.export
        if weights == "chosen":
            own = self._own_weights_are_better()
        elif weights == "average" and self.average is None:
            raise CheckpointError("this run keeps no weight average (ema_decay = 0)")
        else:
            own = weights == "own"
            path = path.with_name(f"{path.stem}-{weights}.ufvm")
        if own:
            self.last_validation = self.live_validation
        metadata = {
            "trained_steps": self.step,
            "finished": finished,
            "stages": [s.name for s in self.config.stages],
            "config": json.loads(json.dumps(self.config_table, default=str)),
            "validation": self.last_validation or {},
            "weights": "average" if self.average is not None and not own else "own",
        }
        storage = torch.int8 if self.config.weight_storage == "int8" else torch.float32
        with nullcontext() if own else self._averaged():
            model_files.save_ufvm(self.model, path, metadata=metadata, storage_dtype=storage)
        return path

    def _own_weights_are_better(self) -> bool:
        """Whether a validation at this very step found the run's own weights better than
        their average (at the end of an annealed schedule the average trails them).

        Better means a lower BD-rate over the validation qps: the mean RD loss is dominated
        by the top qp and ranks states backwards (docs/training.md, session 38). Where the
        curves allow no BD-rate, the mean loss decides.
        """
        average, own = self.last_validation, self.live_validation
        if not (self.average is not None and average is not None and own is not None
                and average["step"] == own["step"] == self.step):
            return False
        if self.last_curve is not None and self.live_curve is not None:
            try:
                return bd_rate(self.last_curve, self.live_curve).percent < 0
            except InputFormatError:
                pass
        return own["loss"] < average["loss"]

    def export_checkpoint(self, weights: str = "chosen") -> Path:
        """Write the model of the run's last checkpoint as the run's export (.ufvm), without
        training: how a run that is still going, or was stopped, hands over its weights.
        `weights` as in `_export`: a ship measures both weights of a run (session 39)."""
        self.model = build_model(self.config.model)
        state = self._resume_state()
        saved = state.get("config", {})
        (self.last_validation, self.last_curve), (self.live_validation, self.live_curve) = (
            self._logged_validations())
        self.config_table = saved or self.config_table
        path = self._export(finished=self.step >= self.config.total_steps, weights=weights)
        if path is None:
            raise CheckpointError("the config names no export file (`export`)")
        return path

    def _logged_validations(self) -> tuple[tuple[dict | None, RdCurve | None], ...]:
        """(summary, curve) of the validations of the average and of the own weights that
        the run's log holds at the current step (the later, where a stage change validated
        twice there; no curve from logs written before the own weights' per-qp rows)."""
        path = self.out_dir / LOG_NAME
        found: dict[str, dict] = {}
        points: dict[str, dict[str, tuple[float, float]]] = {"val": {}, "val_live": {}}
        for row in read_log(path) if path.is_file() else []:
            if int(row["step"]) != self.step:
                continue
            split, _, qp = row["split"].partition("_qp")
            if qp and split in points:
                points[split][qp] = (float(row["bpp"]), float(row["psnr"]))
            elif row["split"] in points:
                found[row["split"]] = {"stage": row["stage"], "step": self.step,
                                       **{k: float(row[k]) for k in ("loss", "bpp", "psnr")}}
        return tuple(
            (found.get(split), RdCurve.from_points(*zip(*points[split].values(), strict=True))
             if points[split] else None)
            for split in ("val", "val_live"))

    def run(self, resume: bool = False) -> TrainResult:
        self._seed()
        self.model = build_model(self.config.model).to(self.device)
        if self.config.portable:
            self.model.make_portable()
        self.model.train()
        self.average = self._make_average()
        if self.config.weight_storage == "int8":
            self.rounding = StorageRounding(self.model)
        self.sources = self._prepare(self.config.data.sources)
        self.validation_sources = (self._prepare(self.config.validation.sources)
                                   if self.config.validation.sources else [])
        self.validation_sets: dict[tuple[str, int], torch.Tensor] = {}
        state = self._resume_state() if resume else None
        if self.group.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(
                json.dumps(self.config_table, indent=2, default=str))
        self.log: CsvLog | _NullLog = _NullLog()
        if self.group.main:
            self.log = CsvLog(self.out_dir / LOG_NAME, resume_step=self.step if resume else None)
        bar = tqdm(total=self.stop_step, initial=self.step, disable=not self.progress,
                   dynamic_ncols=True, unit="step")
        try:
            stage_start = 0
            for index, stage in enumerate(self.config.stages):
                stage_end = stage_start + stage.steps
                if self.step < stage_end and self.step < self.stop_step:
                    inside = (state is not None and state["data_position"]["stage"] == index
                              and self.step > stage_start)
                    rng = None if state is None else state["rng"][self.group.rank]
                    self._run_stage(index, stage, stage_start, state if inside else None, rng,
                                    bar)
                    state = None
                stage_start = stage_end
            finished = self.step >= self.config.total_steps
            export = self._export(finished)
        finally:
            bar.close()
            self.log.close()
            self.group.close()
        last = self._checkpoint_dir() / LAST_CHECKPOINT
        return TrainResult(
            out_dir=self.out_dir, step=self.step, finished=finished,
            log_path=self.out_dir / LOG_NAME, checkpoint=last if last.is_file() else None,
            export=export, validation=self.last_validation, model=self.model,
        )


def _summarise(per_qp: list[tuple]) -> dict[str, float]:
    """The validation summary: mean loss and bpp over the qps, PSNR of the mean MSEs."""
    mse = torch.stack([m for *_, m in per_qp]).mean(0)
    return {
        "loss": sum(r[1] for r in per_qp) / len(per_qp),
        "bpp": sum(r[2] for r in per_qp) / len(per_qp),
        "psnr": float(yuv_psnr(mse)),
    }


class _NullLog:
    """The log of processes other than rank 0: writes nothing."""

    def write(self, **row: object) -> None:
        pass

    def close(self) -> None:
        pass


def run_training(
    config: TrainConfig,
    *,
    out_dir: Path,
    resume: bool = False,
    device: str | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    progress: bool = False,
    config_table: dict | None = None,
    base_dir: Path | None = None,
) -> TrainResult:
    """Train as `config` says, writing the log, checkpoints and model into `out_dir`.

    `resume` continues from `out_dir/checkpoints/last.pt`; `max_steps` stops after that
    many global steps (a checkpoint is written there, so a later `resume` goes on);
    `max_seconds` does the same once that much time has passed; `device` overrides the
    config's. `config_table` (the parsed TOML) is stored in the
    checkpoints and the exported model.
    """
    trainer = Trainer(config, out_dir=out_dir, device=device, max_steps=max_steps,
                      max_seconds=max_seconds, progress=progress, config_table=config_table,
                      base_dir=base_dir)
    return trainer.run(resume=resume)
