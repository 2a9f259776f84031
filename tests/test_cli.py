"""The `retrograd` command line, end to end in a temporary folder."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from retrograd.cli import main


def test_train_two_epochs_writes_the_run_folder(tmp_path, capsys):
    assert main(["train", "--epochs", "2", "--out", str(tmp_path), "--name", "t"]) == 0
    out = capsys.readouterr().out
    assert "epoch   1/2" in out and "done: test accuracy" in out
    run = tmp_path / "t"
    for name in (
        "checkpoint.safetensors",
        "best.safetensors",
        "history.csv",
        "history.json",
        "curves.png",
        "summary.json",
    ):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and 0 <= summary["test_acc"] <= 1


def test_evaluate_and_predict_load_the_checkpoint(tmp_path, capsys):
    main(["train", "--epochs", "3", "--out", str(tmp_path), "--name", "t"])
    capsys.readouterr()
    ckpt = str(tmp_path / "t" / "checkpoint.safetensors")
    assert main(["evaluate", ckpt]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert f"{summary['test_acc'] * 100:.2f}%" in out
    assert main(["predict", ckpt, "--n", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[0].split()[0] == "sample"


def test_resume_continues_where_it_stopped(tmp_path, capsys):
    main(["train", "--epochs", "2", "--out", str(tmp_path), "--name", "r"])
    assert main(["train", "--epochs", "3", "--out", str(tmp_path), "--name", "r", "--resume"]) == 0
    out = capsys.readouterr().out
    assert (
        "resumed from" in out
        and "epoch   3/3" in out
        and "epoch   1/3" not in out.split("resumed")[1]
    )


def test_xor_is_learned_from_the_command_line(tmp_path, capsys):
    args = [
        "train",
        "--dataset",
        "xor",
        "--hidden",
        "8",
        "--activation",
        "tanh",
        "--lr",
        "0.05",
        "--epochs",
        "15",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    summary = json.loads((tmp_path / "xor-mlp" / "summary.json").read_text())
    assert summary["test_acc"] == 1.0


def test_default_digits_run_reaches_95_percent(tmp_path, capsys):
    """The main job (`make demo`): digits MLP to >= 95% test accuracy."""
    assert main(["train", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "digits-mlp" / "summary.json").read_text())
    assert summary["test_acc"] >= 0.95, summary


def test_console_script_and_help():
    result = subprocess.run(
        [sys.executable, "-m", "retrograd.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "train" in result.stdout


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--name", "none", "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["moons", "circles", "spirals", "blobs", "iris"])
def test_other_datasets_train(tmp_path, dataset, capsys):
    assert main(["train", "--dataset", dataset, "--epochs", "2", "--out", str(tmp_path)]) == 0


def test_explain_prints_the_textbook_numbers(tmp_path, capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert "0.298371109" in out and "0.35891648" in out
    md = tmp_path / "e.md"
    assert main(["explain", "--expr", "x*y", "--var", "x=2", "--var", "y=3", "--out", str(md)]) == 0
    assert md.read_text().startswith("#") or "|" in md.read_text()


def _png_size(path):
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_train_diagnose_writes_the_gradient_report(tmp_path, capsys):
    args = ["train", "--dataset", "xor", "--hidden", "8", "--epochs", "2", "--diagnose"]
    assert main(args + ["--out", str(tmp_path), "--name", "d"]) == 0
    out = capsys.readouterr().out
    assert "gradient flow (" in out
    run = tmp_path / "d"
    assert (run / "gradient_report.md").read_text().startswith("# Gradient flow")
    assert json.loads((run / "gradient_stats.json").read_text())["steps"][0] == 0
    assert _png_size(run / "gradient_flow.png") == (1350, 380)


def test_demo_vanishing_prints_the_table_and_writes_one_figure(tmp_path, capsys):
    png, js = tmp_path / "v.png", tmp_path / "v.json"
    args = ["demo", "vanishing", "--depth", "6", "--steps", "3", "--seq-len", "8"]
    assert main(args + ["--out", str(png), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "sigmoid-naive" in out and "residual" in out
    first = {k: v["grad_norms_first"][0] for k, v in json.loads(js.read_text())["configs"].items()}
    assert first["sigmoid-naive"] * 100 <= first["residual"]
    assert _png_size(png)[1] == 400


def test_saliency_trains_then_loads_the_cnn(tmp_path, capsys):
    pytest.importorskip("sklearn")
    ckpt, png = tmp_path / "cnn.safetensors", tmp_path / "s.png"
    args = ["saliency", "--n", "3", "--epochs", "1", "--methods", "saliency,integrated_gradients"]
    args += ["--checkpoint", str(ckpt), "--out", str(png)]
    assert main(args) == 0
    assert "trained for 1 epochs" in capsys.readouterr().out
    assert _png_size(png) == (360, 390)  # 3 columns; image + 2 maps
    assert main(args) == 0
    assert "loaded" in capsys.readouterr().out
    assert main(["saliency", "--methods", "lime", "--out", str(png)]) == 2


def test_compare_rules_writes_table_and_figure(tmp_path, capsys):
    args = ["compare-rules", "--datasets", "xor", "--rules", "backprop,fa", "--steps", "40"]
    assert main(args + ["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "feedback alignment" in out.lower() and "backprop" in out
    assert _png_size(tmp_path / "rules.png")[0] > 0 and (tmp_path / "rules.md").exists()
