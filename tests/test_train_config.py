"""TrainConfig: defaults < preset < YAML < flags, unknown keys, value checks, CLI <-> YAML parity."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from cnnlab.cli import build_parser
from cnnlab.train import PRESETS, TrainConfig, build_config
from cnnlab.train.config import field_names, read_yaml


def test_defaults_are_the_main_job():
    cfg = TrainConfig()
    assert (cfg.model, cfg.dataset, cfg.device, cfg.precision) == (
        "simple_cnn", "digits", "auto", "fp32"
    )
    assert cfg.compile is False  # slower than eager for SimpleCNN on CPU


def test_precedence_preset_yaml_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preset: cifar10-fast\nlr: 0.02\nepochs: 7\n")
    cfg = build_config({"epochs": 3}, path)
    assert cfg.epochs == 3  # flag beats YAML
    assert cfg.lr == 0.02  # YAML beats preset
    assert cfg.batch_size == PRESETS["cifar10-fast"]["batch_size"]  # preset beats default
    assert cfg.batch_size != TrainConfig().batch_size


def test_unknown_yaml_key_lists_valid_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate") as info:
        read_yaml(path)
    assert "valid keys are" in str(info.value) and "lr" in str(info.value)


def test_yaml_must_be_a_mapping(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        read_yaml(path)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        read_yaml(tmp_path / "nope.yaml")


def test_saved_yaml_round_trips(tmp_path):
    cfg = TrainConfig(epochs=5, lr=0.01, model_args={"dropout": 0.3}, patience=2)
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml())
    assert TrainConfig(**read_yaml(path)) == cfg


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("epochs", 0, "epochs must be >= 1"),
        ("optimizer", "rmsprop", "optimizer must be one of"),
        ("schedule", "linear", "schedule must be one of"),
        ("lr", -1.0, "lr must be > 0"),
        ("label_smoothing", 1.0, "label_smoothing must be"),
        ("precision", "fp8", "precision must be one of"),
        ("device", "tpu", "device must be one of"),
        ("freeze", "head", "freeze must be"),
        ("lr", "fast", "lr must be a number"),
        ("nesterov", True, "nesterov=True needs optimizer='sgd'"),
    ],
)
def test_bad_values_name_the_field(key, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        TrainConfig(**{key: value})


def test_every_field_is_a_flag_and_parses():
    """Each TrainConfig field is settable from the command line with the YAML key's name."""
    parser = build_parser()
    argv = ["train"]
    expected = {}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = str(f.type)
        if f.name == "model_args":
            argv += ["--model-arg", "dropout=0.25"]
            expected[f.name] = ["dropout=0.25"]
        elif hint.startswith("bool"):
            argv.append(flag)
            expected[f.name] = True
        elif f.name == "preset":
            argv += [flag, "course"]
            expected[f.name] = "course"
        elif hint.startswith("int"):
            argv += [flag, "3"]
            expected[f.name] = 3
        elif hint.startswith("float"):
            argv += [flag, "0.5"]
            expected[f.name] = 0.5
        else:
            argv += [flag, "x"]
            expected[f.name] = "x"
    args = vars(parser.parse_args(argv))
    assert {k: args[k] for k in expected} == expected
    assert set(expected) == set(field_names())


def test_cli_none_values_and_help_from_comments(capsys):
    parser = build_parser()
    args = parser.parse_args(["train", "--eval-split", "none", "--patience", "null"])
    assert args.eval_split is None and args.patience is None
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    out = capsys.readouterr().out
    assert "peak learning rate" in out  # the comment beside `lr` in config.py


def test_print_config_is_valid_yaml(capsys):
    from cnnlab.cli import main

    assert main(["train", "--print-config", "--preset", "course", "--epochs", "2"]) == 0
    values = yaml.safe_load(capsys.readouterr().out)
    assert values["epochs"] == 2 and values["optimizer"] == "adam" and values["lr"] == 1e-3
    assert set(values) == set(field_names())


def test_every_field_documents_itself_and_train_help_shows_it(capsys):
    import dataclasses

    from cnnlab.cli import main
    from cnnlab.train.config import TrainConfig, field_help

    helps = field_help()
    assert all(helps[f.name] for f in dataclasses.fields(TrainConfig)), helps
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in ("epochs", "freeze_bn", "label_smoothing"):
        assert helps[name] in out
