"""The training loop on the CPU: it learns, it resumes exactly, it exports a usable model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ufvc.cli import main as cli_main
from ufvc.errors import CheckpointError, InputFormatError
from ufvc.eval.bdrate import RdCurve, bd_rate
from ufvc.models.checkpoint import read_ufvm, save_ufvm
from ufvc.models.registry import load_model_file
from ufvc.nn.exact import is_portable
from ufvc.train.averaging import WeightAverage
from ufvc.train.config import ModelSpec, config_from_table
from ufvc.train.runlog import read_log
from ufvc.train.state import load_checkpoint
from ufvc.train.trainer import Trainer, build_model, run_training


def _validation_losses(log_path: Path) -> dict[str, list[float]]:
    losses: dict[str, list[float]] = {}
    for row in read_log(log_path):
        if row["split"] == "val":
            losses.setdefault(row["stage"], []).append(float(row["loss"]))
    return losses


def _own_validated_better(log_path: Path, step: int) -> bool:
    """The export's rule, from the log: the own weights' validation curve needs fewer bits
    than the average's (BD-rate), or, where no BD-rate can be had, a lower mean loss."""
    points: dict[str, list[tuple[float, float]]] = {"val": [], "val_live": []}
    losses = {}
    for row in read_log(log_path):
        if int(row["step"]) != step:
            continue
        split, _, qp = row["split"].partition("_qp")
        if qp and split in points:
            points[split].append((float(row["bpp"]), float(row["psnr"])))
        elif row["split"] in points:
            losses[row["split"]] = float(row["loss"])
    try:
        return bd_rate(RdCurve.from_points(*zip(*points["val"], strict=True)),
                       RdCurve.from_points(*zip(*points["val_live"], strict=True))).percent < 0
    except InputFormatError:
        return losses["val_live"] < losses["val"]


def test_the_export_choice_goes_by_bdrate_not_by_the_mean_loss(run_table, tmp_path: Path):
    table = run_table(intra_steps=1, video_steps=1)
    trainer = Trainer(config_from_table(table), out_dir=tmp_path, config_table=table)
    trainer.average = WeightAverage(torch.nn.Linear(1, 1), 0.5)
    # Own weights: 5 % fewer bits at every qp, but a worse mean loss (the top qp's weight).
    trainer.last_validation = {"stage": "intra", "step": 0, "loss": 1.0}
    trainer.live_validation = {"stage": "intra", "step": 0, "loss": 1.2}
    rates, psnr = (0.1, 0.3, 0.8, 1.6), (28.0, 32.0, 35.0, 37.0)
    trainer.last_curve = RdCurve.from_points(rates, psnr)
    trainer.live_curve = RdCurve.from_points([0.95 * r for r in rates], psnr)
    assert trainer._own_weights_are_better()
    trainer.live_curve = RdCurve.from_points([1.05 * r for r in rates], psnr)
    assert not trainer._own_weights_are_better()
    # A curve BD-rate cannot use (quality falling with rate): the mean loss decides.
    trainer.live_curve = RdCurve.from_points(rates, psnr[::-1])
    trainer.live_validation["loss"] = 0.9
    assert trainer._own_weights_are_better()


def test_short_cpu_run_lowers_the_validation_rd_loss(run_table, tmp_path: Path, one_thread):
    table = run_table(intra_steps=30, video_steps=30)
    table["stages"][1].update(batch_size=4, lr_schedule="constant")
    result = run_training(config_from_table(table), out_dir=tmp_path, config_table=table)
    assert result.finished and result.step == 60

    losses = _validation_losses(result.log_path)
    # Each stage is validated before its first and after its last step.
    assert len(losses["intra"]) == 2 and len(losses["video"]) == 2
    assert losses["intra"][1] < 0.8 * losses["intra"][0]
    assert losses["video"][1] < 0.8 * losses["video"][0]
    qps = {row["split"] for row in read_log(result.log_path) if row["split"].startswith("val_")}
    assert qps == {"val_qp0", "val_qp21", "val_qp42", "val_qp63"}

    # The exported model is the trained one and loads through the registry.
    exported = load_model_file(result.export)
    trained = load_checkpoint(result.checkpoint)["model"]
    for key, value in exported.state_dict().items():
        assert torch.equal(value, trained[key]), key

    plot = tmp_path / "curves.png"
    assert cli_main(["plot-log", str(result.log_path), "-o", str(plot)]) == 0
    assert plot.stat().st_size > 10_000


def _train_rows(log_path: Path) -> list[tuple[str, str, str]]:
    return [(r["step"], r["loss"], r["lr"]) for r in read_log(log_path) if r["split"] == "train"]


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(
    run_table, tmp_path: Path, one_thread
):
    table = run_table(intra_steps=3, video_steps=4)
    table["precision"] = "bf16"  # the CPU's autocast path, noisy rates: every RNG matters
    whole = run_training(config_from_table(table), out_dir=tmp_path / "whole",
                         config_table=table)

    config_path = tmp_path / "run.toml"
    config_path.write_text(_as_toml(table))
    out = tmp_path / "pieces"
    base = ["train", "--config", str(config_path), "--out", str(out), "--quiet"]
    assert cli_main(base + ["--max-steps", "2"]) == 0  # inside the intra stage
    assert cli_main(base + ["--resume", "--max-steps", "5"]) == 0  # past the stage boundary
    # Loading in a worker process must not change which samples a step sees.
    assert cli_main(base + ["--resume", "data.num_workers=1"]) == 0

    pieces = load_checkpoint(out / "checkpoints" / "last.pt")
    reference = load_checkpoint(whole.checkpoint)
    assert pieces["step"] == reference["step"] == 7
    for key, value in reference["model"].items():
        assert torch.equal(pieces["model"][key], value), key
    assert _train_rows(out / "train_log.csv") == _train_rows(whole.log_path)


def test_resume_follows_the_configs_schedule_when_a_stage_grows(
    run_table, tmp_path: Path, one_thread
):
    longer = run_table(intra_steps=1, video_steps=9)
    longer["stages"][1]["lr"] = 1e-3
    whole = run_training(config_from_table(longer), out_dir=tmp_path / "whole",
                         config_table=longer)

    shorter = run_table(intra_steps=1, video_steps=4)
    out = tmp_path / "pieces"
    run_training(config_from_table(shorter), out_dir=out, max_steps=3, config_table=shorter)
    run_training(config_from_table(longer), out_dir=out, resume=True, config_table=longer)

    def lrs(log_path: Path) -> list[tuple[str, str]]:
        return [(step, lr) for step, _, lr in _train_rows(log_path) if int(step) > 3]

    assert len(lrs(whole.log_path)) == 7
    assert lrs(out / "train_log.csv") == lrs(whole.log_path)


def test_resume_refuses_a_missing_or_different_run(run_table, tmp_path: Path, one_thread):
    table = run_table(intra_steps=1, video_steps=1)
    with pytest.raises(CheckpointError, match="no training checkpoint"):
        run_training(config_from_table(table), out_dir=tmp_path, resume=True, config_table=table)
    run_training(config_from_table(table), out_dir=tmp_path, max_steps=1, config_table=table)
    table["seed"] = 4
    with pytest.raises(CheckpointError, match="'seed'"):
        run_training(config_from_table(table), out_dir=tmp_path, resume=True, config_table=table)


def _as_toml(table: dict) -> str:
    """A config table as TOML (the subset the tests use: tables, arrays of tables, scalars)."""
    lines: list[str] = []

    def scalar(value) -> str:
        return json.dumps(value) if not isinstance(value, bool) else str(value).lower()

    def emit(prefix: str, node: dict) -> None:
        plain = {k: v for k, v in node.items() if not isinstance(v, dict | list)
                 or (isinstance(v, list) and not (v and isinstance(v[0], dict)))}
        for key, value in plain.items():
            lines.append(f"{key} = {scalar(value)}")
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                lines.append(f"[{name}]")
                emit(f"{name}.", value)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for item in value:
                    lines.append(f"[[{name}]]")
                    emit(f"{name}.", item)

    emit("", table)
    return "\n".join(lines) + "\n"


def test_model_starts_from_recipe_weights_a_ufvm_or_changed_configs(tmp_path: Path):
    recipe = build_model(ModelSpec(name="ufvc-tiny"))
    again = build_model(ModelSpec(name="ufvc-tiny"))
    assert all(torch.equal(a, b) for a, b in zip(recipe.state_dict().values(),
                                                 again.state_dict().values(), strict=True))
    with torch.no_grad():
        recipe.video.q_decoder.mul_(2.0)
    path = tmp_path / "start.ufvm"
    save_ufvm(recipe, path)
    tuned = build_model(ModelSpec(name="ufvc-tiny", init=str(path)))
    assert torch.equal(tuned.video.q_decoder, recipe.video.q_decoder)

    wider = build_model(ModelSpec(name="ufvc-tiny", video={"y_channels": 32}))
    assert wider.video.config.y_channels == 32
    with pytest.raises(CheckpointError):
        build_model(ModelSpec(name="ufvc-tiny", init=str(path), video={"y_channels": 32}))


def test_time_budget_stops_with_a_checkpoint_and_export_writes_its_model(
    run_table, tmp_path: Path, one_thread
):
    table = run_table(intra_steps=50, video_steps=1)
    config_path = tmp_path / "run.toml"
    config_path.write_text(_as_toml(table))
    out = tmp_path / "run"
    base = ["train", "--config", str(config_path), "--out", str(out), "--quiet"]
    # A budget that runs out after the first step: the run stops there, not after 51 steps.
    assert cli_main(base + ["--max-minutes", "1e-6"]) == 0
    stopped = load_checkpoint(out / "checkpoints" / "last.pt")
    assert 1 <= stopped["step"] < 51
    (out / "model.ufvm").unlink()
    assert cli_main(base + ["--export"]) == 0
    exported = load_model_file(out / "model.ufvm")
    assert read_ufvm(out / "model.ufvm").metadata["trained_steps"] == stopped["step"]
    for key, value in exported.state_dict().items():
        assert torch.equal(value, stopped["model"][key]), key
    assert cli_main(base + ["--max-minutes", "0"]) == 2
    assert cli_main(base + ["--weights", "own"]) == 2  # --weights only goes with --export
    assert cli_main(base + ["--export", "--weights", "average"]) == 4  # the run keeps none
    assert not (out / "model-average.ufvm").exists()


def test_quantisation_aware_run_trains_through_the_portable_roundings(
    run_table, tmp_path: Path, one_thread
):
    table = run_table(intra_steps=20, video_steps=10)
    table["portable"] = True
    result = run_training(config_from_table(table), out_dir=tmp_path, config_table=table)
    assert result.finished
    losses = _validation_losses(result.log_path)
    assert losses["intra"][1] < 0.8 * losses["intra"][0]
    assert losses["video"][1] < losses["video"][0]
    # The export holds plain weights (the portable arithmetic is not a checkpoint format).
    exported = load_model_file(result.export)
    assert not is_portable(exported)


def test_quantisation_aware_run_trains_in_bfloat16(run_table, tmp_path: Path, one_thread):
    # The campaign's stage B setting: the portable roundings see bfloat16 activations.
    table = run_table(intra_steps=2, video_steps=2)
    table["portable"], table["precision"] = True, "bf16"
    result = run_training(config_from_table(table), out_dir=tmp_path, config_table=table)
    assert result.finished
    losses = _validation_losses(result.log_path)
    assert set(losses) == {"intra", "video"}
    assert all(torch.isfinite(torch.tensor(v)).all() for v in losses.values())


def test_weight_average_is_what_validation_and_the_export_use_and_it_resumes(
    run_table, tmp_path: Path, one_thread
):
    table = run_table(intra_steps=3, video_steps=2)
    table["ema_decay"] = 0.5
    whole = run_training(config_from_table(table), out_dir=tmp_path / "whole",
                         config_table=table)
    out = tmp_path / "pieces"
    run_training(config_from_table(table), out_dir=out, max_steps=2, config_table=table)
    run_training(config_from_table(table), out_dir=out, resume=True, config_table=table)

    reference = load_checkpoint(whole.checkpoint)
    pieces = load_checkpoint(out / "checkpoints" / "last.pt")
    assert set(reference["ema"]) == {n for n, _ in whole.model.named_parameters()}
    for key, value in reference["ema"].items():
        assert torch.equal(pieces["ema"][key], value), key

    # The run's export holds whichever of the two validated better at the last step; so
    # does the export of its checkpoint (`ufvc train --export`), by the run's log, and
    # without validations at the checkpoint's step in the log, the export is the average.
    chosen = "own" if _own_validated_better(whole.log_path, whole.step) else "average"
    assert read_ufvm(whole.export).metadata["weights"] == chosen
    (out / "model.ufvm").unlink()
    Trainer(config_from_table(table), out_dir=out, config_table=table).export_checkpoint()
    assert read_ufvm(out / "model.ufvm").metadata["weights"] == chosen
    blind = tmp_path / "blind"
    shutil.copytree(out / "checkpoints", blind / "checkpoints")
    Trainer(config_from_table(table), out_dir=blind, config_table=table).export_checkpoint()
    assert read_ufvm(blind / "model.ufvm").metadata["weights"] == "average"
    for path, kind in ((whole.export, chosen), (blind / "model.ufvm", "average")):
        exported = load_model_file(path).state_dict()
        expected = reference["ema"] if kind == "average" else reference["model"]
        for key in reference["ema"]:
            assert torch.equal(exported[key], expected[key]), key
    assert any(not torch.equal(value, reference["model"][key])
               for key, value in reference["ema"].items())
    # Either weights on demand (`--export --weights`), beside the chosen export.
    chosen_bytes = (out / "model.ufvm").read_bytes()
    for kind, key in (("average", "ema"), ("own", "model")):
        path = Trainer(config_from_table(table), out_dir=out,
                       config_table=table).export_checkpoint(kind)
        assert path == out / f"model-{kind}.ufvm"
        assert read_ufvm(path).metadata["weights"] == kind
        exported = load_model_file(path).state_dict()
        assert all(torch.equal(exported[name], value) for name, value in pieces[key].items())
    assert (out / "model.ufvm").read_bytes() == chosen_bytes

    # Validation measured the average and the run's own weights, which differ.
    rows = [r for r in read_log(whole.log_path) if r["split"] in ("val", "val_live")]
    assert [r["split"] for r in rows] == ["val", "val_live"] * 4
    assert rows[-1]["loss"] != rows[-2]["loss"]

    # The run's own weights are back after validating and exporting with the average.
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, reference["model"][key]), key


def test_export_takes_the_own_weights_when_the_average_validates_worse(
    run_table, tmp_path: Path, one_thread
):
    table = run_table(intra_steps=10, video_steps=1)
    table["stages"] = table["stages"][:1]
    table["ema_decay"] = 0.9999  # the average stays at the untrained start
    result = run_training(config_from_table(table), out_dir=tmp_path, config_table=table)
    rows = {r["split"]: float(r["loss"]) for r in read_log(result.log_path)
            if r["split"] in ("val", "val_live") and r["step"] == "10"}
    assert rows["val_live"] < 0.9 * rows["val"]
    assert read_ufvm(result.export).metadata["weights"] == "own"
    assert result.validation["loss"] == pytest.approx(rows["val_live"], rel=1e-5)
    trained = load_checkpoint(result.checkpoint)["model"]
    for key, value in load_model_file(result.export).state_dict().items():
        assert torch.equal(value, trained[key]), key
    # The export of the checkpoint (`ufvc train --export`) reads that choice from the log.
    result.export.unlink()
    Trainer(config_from_table(table), out_dir=tmp_path, config_table=table).export_checkpoint()
    assert read_ufvm(result.export).metadata["weights"] == "own"
    for key, value in load_model_file(result.export).state_dict().items():
        assert torch.equal(value, trained[key]), key


def test_weight_average_follows_its_decay_and_swaps_in_and_out():
    model = torch.nn.Linear(3, 2)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    average = WeightAverage(model, decay=0.75)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
    average.update()
    state = average.state_dict()
    for name, param in model.named_parameters():
        assert torch.allclose(state[name], start[name] + 0.25)
        assert torch.equal(param, start[name] + 1.0)
    with average.applied():
        assert torch.allclose(model.weight, start["weight"] + 0.25)
    assert torch.equal(model.weight, start["weight"] + 1.0)
    with pytest.raises(CheckpointError, match="weight average"):
        average.load_state_dict({"weight": state["weight"]})
    with pytest.raises(InputFormatError, match="ema_decay"):
        config_from_table({**_minimal_table(), "ema_decay": 1.0})


def _minimal_table() -> dict:
    return {"model": "ufvc-tiny", "data": {"sources": [{"kind": "video", "path": "x.y4m"}]},
            "stages": [{"name": "intra", "kind": "intra", "steps": 1}]}
