"""Every numeric option has a range, shared by the command line, the panel and the console, and a value outside
it (NaN and infinity included) is refused with one line before any compute."""
from dataclasses import fields, replace

import pytest
from helpers import one_error_line, write_png_domains

from MedShiftLib.cli import main
from MedShiftLib.cli_checks import COMMAND_BOUNDS
from MedShiftLib.cli_parser import build_parser, settings_from_arguments
from MedShiftLib.errors import MedShiftError
from MedShiftLib.option_bounds import Bounds
from MedShiftLib.settings import TranslationSettings
from MedShiftLib.training.config import TrainingConfig

SETTINGS = TranslationSettings("a", "b")
TRAINING = TrainingConfig(data_dir="data", out_dir="run")


def _outside(bounds: Bounds, integer: bool) -> list:
    """Values just outside `bounds`, and NaN and infinity for float options."""
    step = 1 if integer else 1e-6
    values = [bounds.low - step if not bounds.low_open else bounds.low,
              bounds.high + step if not bounds.high_open else bounds.high]
    return values + ([] if integer else [float("nan"), float("inf"), float("-inf")])


def _bounded(instance):
    return [(f, f.metadata["bounds"]) for f in fields(instance) if f.metadata.get("bounds")]


@pytest.mark.parametrize("field, bounds", _bounded(SETTINGS), ids=lambda v: getattr(v, "name", ""))
def test_every_numeric_translation_setting_refuses_values_outside_its_range(field, bounds):
    integer = field.type in ("int", int)
    for value in _outside(bounds, integer):
        with pytest.raises(MedShiftError, match=f"{field.metadata['flag']}.*must be within"):
            replace(SETTINGS, **{field.name: value}).validated()
    replace(SETTINGS, **{field.name: bounds.high if not bounds.high_open else bounds.low}).validated()


@pytest.mark.parametrize("field, bounds", _bounded(TRAINING), ids=lambda v: getattr(v, "name", ""))
def test_every_numeric_training_option_refuses_values_outside_its_range(field, bounds):
    integer = "int" in str(field.type)
    for value in _outside(bounds, integer):
        with pytest.raises(MedShiftError, match=f"{field.metadata['flag']} .*must be within"):
            replace(TRAINING, **{field.name: value}).check()


def test_the_bounds_of_the_issue_are_what_they_say():
    for change in (dict(guidance_scale=1e5), dict(steps=10**9), dict(seed=-1), dict(tau=float("nan"))):
        with pytest.raises(MedShiftError):
            replace(SETTINGS, **change).validated()
    assert replace(SETTINGS, seed=2**31 - 1).for_image(3).validated().seed == 2  # seeds of a batch stay in range


def test_dopri5_under_the_default_preset_names_the_schedule_option():
    args = build_parser().parse_args(["translate", "x.png", "--out", "o", "--source", "a", "--target", "b",
                                      "--solver", "dopri5"])
    with pytest.raises(MedShiftError, match="--schedule uniform"):
        settings_from_arguments(args).validated()
    args.schedule = "uniform"
    assert settings_from_arguments(args).validated().solver == "dopri5"


def test_help_texts_give_the_ranges(capsys):
    for command in ("translate", "train"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "0..2147483647" in help_text
        assert ("1..1000" if command == "translate" else "0 < x <= 1") in help_text


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_png_domains(tmp_path_factory.mktemp("data"), domains=("a", "b"), subjects=2, views=1, size=32)


@pytest.mark.parametrize("option, value", [("--guidance", "1e5"), ("--steps", "1000000000"), ("--seed", "-1"),
                                           ("--tau", "nan"), ("--noise-renewal", "inf"), ("--tile-size", "100000"),
                                           ("--frame", "-1")])
def test_translate_refuses_absurd_values_in_one_line_before_any_compute(tmp_path, model_path, data, capsys, monkeypatch,
                                                                         option, value):
    from MedShiftLib.pipeline import file_translation
    monkeypatch.setattr(file_translation, "translate_image", lambda *a, **k: pytest.fail("computed"))
    rc = main(["translate", str(data / "a" / "s0_v0.png"), "--out", str(tmp_path / "out"), "--model", str(model_path),
               "--source", "a", "--target", "b", "--device", "cpu", option, value])
    assert rc == 2
    one_error_line(capsys, option, "must be within")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options", [["--seed", "-1"], ["--lr", "nan"], ["--steps", "1000000000"],
                                     ["--coupling", "schrodinger-bridge", "--bridge-sigma", "nan"],
                                     ["--workers", "-1"], ["--ema-decay", "1"], ["--batch-size", "0"]])
def test_train_refuses_absurd_values_in_one_line_before_any_work(tmp_path, data, capsys, monkeypatch, options):
    from MedShiftLib.training import folder_data
    monkeypatch.setattr(folder_data, "FolderData", lambda *a, **k: pytest.fail("work started"))
    rc = main(["train", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny", "--resolution", "32",
               "--device", "cpu", "--quiet", *options])
    assert rc == 2
    one_error_line(capsys, options[-2], "must be within")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command, dest", [(c, d) for c, table in COMMAND_BOUNDS.items() for d in table])
def test_every_other_numeric_option_is_refused_outside_its_range(tmp_path, model_path, data, capsys, monkeypatch,
                                                                 command, dest):
    from MedShiftLib import cli
    monkeypatch.setattr(cli, "COMMANDS", {}, raising=True)  # a check that let a value through fails with KeyError
    required = {"translate": ["x.png", "--out", "o", "--source", "a", "--target", "b"], "simulate": ["sim"],
                "demo": [], "evaluate": ["--data", "t", "--train-data", "d", "--out", "e"],
                "domain-contrast": ["--model", str(model_path), "--data", str(data)]}[command]
    flag = "--" + dest.replace("_", "-")
    rc = main([command, *required, flag, "nan" if dest not in ("frame", "subjects", "views_per_subject", "size",
                                                              "seed", "max_views", "classifier_steps",
                                                              "images_per_domain", "steps") else "-5"])
    assert rc == 2
    one_error_line(capsys, flag, "must be within")
