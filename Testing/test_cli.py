"""The `medshift` command's contract: outputs, formats, one-line errors, exit codes."""
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from helpers import write_png_domains, write_tiny_checkpoint

from MedShiftLib.cli import build_parser, main, settings_from_arguments, translation_arguments
from MedShiftLib.settings import COMMAND_LINE_OPTIONS, PRESETS, TranslationSettings


def _nrrd(path, shape=(40, 56)):
    rng = np.random.default_rng(3)
    image = sitk.GetImageFromArray((1000 + 500 * rng.random(shape)).astype(np.int16))
    image.SetSpacing((0.2, 0.3))
    image.SetOrigin((4.0, -7.5))
    sitk.WriteImage(image, str(path))
    return path


def test_translate_writes_one_output_per_input_with_name_format_and_grid(tmp_path, model_path, capsys):
    inputs = tmp_path / "in"
    write_png_domains(inputs, domains=("a",), subjects=2, views=1)
    nrrd = _nrrd(tmp_path / "scan.nrrd")
    before = nrrd.read_bytes()
    out = tmp_path / "out"
    rc = main(["translate", str(inputs / "a"), str(nrrd), "--out", str(out), "--model", str(model_path),
               "--source", "a", "--target", "b", "--steps", "2", "--device", "cpu"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["s0_v0.png", "s1_v0.png", "scan.nrrd"]
    assert nrrd.read_bytes() == before
    original, result = sitk.ReadImage(str(nrrd)), sitk.ReadImage(str(out / "scan.nrrd"))
    assert result.GetSize() == original.GetSize() and result.GetSpacing() == original.GetSpacing()
    assert result.GetOrigin() == original.GetOrigin()
    assert result.GetPixelID() == original.GetPixelID()
    assert not np.array_equal(sitk.GetArrayFromImage(result), sitk.GetArrayFromImage(original))
    assert str(out / "scan.nrrd") in capsys.readouterr().out


def test_noise_renewal_options_reach_the_translation_and_the_seed_decides(tmp_path, model_path):
    nrrd = _nrrd(tmp_path / "scan.nrrd")
    common = ["translate", str(nrrd), "--model", str(model_path), "--source", "a", "--target", "b", "--steps", "2",
              "--device", "cpu"]

    def run(name, *extra):
        assert main(common + ["--out", str(tmp_path / name), *extra]) == 0
        return sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name / "scan.nrrd")))

    plain = run("plain")
    noisy = ("--noise-renewal", "1", "--schedule", "quadratic")
    seed3, seed3_again = run("s3", *noisy, "--seed", "3"), run("s3b", *noisy, "--seed", "3")
    seed4 = run("s4", *noisy, "--seed", "4")
    assert np.array_equal(seed3, seed3_again)
    assert not np.array_equal(seed3, seed4) and not np.array_equal(seed3, plain)


def test_images_of_one_run_get_their_own_noise(tmp_path, model_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _nrrd(inputs / "first.nrrd"), _nrrd(inputs / "second.nrrd")  # the same pixels twice
    assert main(["translate", str(inputs), "--model", str(model_path), "--source", "a", "--target", "b", "--steps", "2",
                 "--noise-renewal", "1", "--seed", "3", "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    first, second = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / name)))
                     for name in ("first.nrrd", "second.nrrd"))
    assert not np.array_equal(first, second)  # seeds 3 and 4: no noise field shared across a data set


def test_wrong_domain_is_one_line_listing_valid_names(tmp_path, model_path, capsys):
    rc = main(["translate", str(_nrrd(tmp_path / "x.nrrd")), "--out", str(tmp_path / "o"), "--model", str(model_path),
               "--source", "real", "--target", "b"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == "medshift: error: unknown domain 'real'; this model knows: a, b, c"
    assert not (tmp_path / "o").exists()


def test_default_preset_is_the_best_ranked_one_and_deterministic_for_a_model_without_statistics(model_path, capsys):
    from MedShiftLib.cli import default_preset_for
    from MedShiftLib.settings import DEFAULT_PRESET
    assert DEFAULT_PRESET == "matched-contrast-and-noise"
    assert default_preset_for(None) == DEFAULT_PRESET  # the bundled model records its statistics
    assert default_preset_for(str(model_path)) == "deterministic"  # the tiny test model records none
    args = build_parser().parse_args(["translate", "x.png", "--out", "o", "--source", "a", "--target", "b"])
    assert settings_from_arguments(args) == TranslationSettings("a", "b").with_preset(DEFAULT_PRESET)
    args = build_parser().parse_args(["translate", "x.png", "--out", "o", "--source", "a", "--target", "b",
                                      "--no-noise-matching"])
    assert settings_from_arguments(args).noise_matching is False and settings_from_arguments(args).contrast_transfer


def test_debug_shows_the_traceback(tmp_path, model_path):
    from MedShiftLib.errors import DomainError
    with pytest.raises(DomainError):
        main(["--debug", "translate", str(_nrrd(tmp_path / "x.nrrd")), "--out", str(tmp_path / "o"),
              "--model", str(model_path), "--source", "real", "--target", "b"])


@pytest.mark.parametrize("args, message", [
    (["translate", "{tmp}/missing.png", "--out", "{tmp}/o", "--source", "a", "--target", "b", "--model", "{model}"],
     "no such file"),
    (["translate", "{tmp}/x.nrrd", "--out", "{tmp}", "--source", "a", "--target", "b", "--model", "{model}"],
     "no input is overwritten"),
    (["translate", "{tmp}/x.nrrd", "--out", "{tmp}/o", "--source", "a", "--target", "b",
      "--model", "{tmp}/none.safetensors"], "does not exist"),
    (["translate", "{tmp}/x.nrrd", "--out", "{tmp}/o", "--source", "a", "--target", "b", "--model", "{model}",
      "--tau", "1.5"], "tau"),
    (["translate", "{tmp}/x.nrrd", "--out", "{tmp}/o", "--source", "a", "--target", "b", "--model", "{model}",
      "--noise-renewal", "2"], "noise renewal (--noise-renewal) 2.0: must be within 0..1"),
    (["info", "{tmp}/x.nrrd"], "not a MedShift"),
    (["translate", "{tmp}/x.nrrd", "--out", "{tmp}/o", "--source", "a", "--target", "b", "--model", "{model}",
      "--device", "tpu"], "unknown device"),
])
def test_errors_exit_2_with_one_line(tmp_path, model_path, capsys, args, message):
    _nrrd(tmp_path / "x.nrrd")
    rc = main([a.format(tmp=tmp_path, model=model_path) for a in args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_info_lists_domains_in_label_order(model_path, capsys):
    assert main(["info", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert "0:a, 1:b, 2:c" in out and "resolution        32 px" in out
    assert max(len(line) for line in out.splitlines()) < 200 and "\nprovenance\n" in out
    assert main(["info", str(model_path), "--json"]) == 0
    assert '"domains": [\n    "a",' in capsys.readouterr().out


@pytest.mark.parametrize("command, option", [("translate", "--tau"), ("train", "--coupling"), ("info", "--json"),
                                             ("simulate", "--views-per-subject"), ("demo", "--target")])
def test_every_command_has_help(command, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and option in capsys.readouterr().out


def test_every_option_of_every_command_has_help_text():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [f"{name} {'/'.join(action.option_strings)}" for name, sub in commands.items()
               for action in sub._actions if action.option_strings and action.dest != "help" and not action.help]
    assert missing == []


def test_unknown_solver_is_refused_with_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", "x.png", "--out", "o", "--source", "a", "--target", "b", "--solver", "midpoint"])
    assert exit_info.value.code == 2 and "choose from 'euler', 'heun', 'rk4', 'dopri5'" in capsys.readouterr().err


def test_simulate_writes_a_data_folder_and_a_preview(tmp_path, capsys):
    from PIL import Image
    rc = main(["simulate", str(tmp_path / "data"), "--subjects", "1", "--views-per-subject", "1", "--size", "32",
               "--seed", "3", "--quiet", "--preview", str(tmp_path / "strip.png")])
    assert rc == 0
    domains = sorted(p.name for p in (tmp_path / "data").iterdir() if p.is_dir())
    assert domains == ["clinical-exposure", "clinical-low", "clinical-normal", "sim-high", "sim-low"]
    assert all((tmp_path / "data" / d / "s0000_v00.png").is_file() for d in domains)
    width, height = Image.open(tmp_path / "strip.png").size
    assert width > 5 * 32 and height > 32
    assert main(["simulate", str(tmp_path / "x"), "--subjects", "0", "--preview", str(tmp_path / "p.png"),
                 "--lao-rao", "55"]) == 2
    assert "outside -40..40" in capsys.readouterr().err


def test_demo_writes_input_translation_reference_and_picture(tmp_path, capsys):
    from PIL import Image
    model = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("sim-low", "clinical-normal"), resolution=32)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--model", str(model)]) == 0
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert names == ["comparison.png", "input_sim-low.png", "simulator_clinical-normal.png",
                     "translated_sim-low_to_clinical-normal.png", "translated_sim-low_to_clinical-normal_noise.png"]
    source = np.asarray(Image.open(tmp_path / "demo" / "input_sim-low.png"))
    result = np.asarray(Image.open(tmp_path / "demo" / "translated_sim-low_to_clinical-normal.png"))
    noisy = np.asarray(Image.open(tmp_path / "demo" / "translated_sim-low_to_clinical-normal_noise.png"))
    assert source.shape == result.shape == noisy.shape == (32, 32) and not np.array_equal(source, result)
    assert not np.array_equal(result, noisy)
    assert Image.open(tmp_path / "demo" / "comparison.png").size[0] > 4 * 32


def test_demo_adds_matched_contrast_and_noise_panels_when_the_model_records_its_statistics(tmp_path):
    from PIL import Image

    from MedShiftLib.engine.checkpoint import load_checkpoint, save_checkpoint
    from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics
    plain = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("sim-low", "clinical-normal"), resolution=32)
    model, info = load_checkpoint(plain)
    info.statistics = measure_domain_statistics({"sim-low": torch.randn(2, 1, 32, 32),
                                             "clinical-normal": 2 * torch.randn(2, 1, 32, 32)})
    save_checkpoint(tmp_path / "c.safetensors", model.state_dict(), info)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--model", str(tmp_path / "c.safetensors")]) == 0
    matched = np.asarray(Image.open(tmp_path / "demo" / "translated_sim-low_to_clinical-normal_matched_contrast.png"))
    plain_result = np.asarray(Image.open(tmp_path / "demo" / "translated_sim-low_to_clinical-normal.png"))
    assert matched.shape == plain_result.shape and not np.array_equal(matched, plain_result)
    with_noise = np.asarray(Image.open(tmp_path / "demo" /
                                       "translated_sim-low_to_clinical-normal_matched_contrast_noise.png"))
    assert with_noise.shape == matched.shape and not np.array_equal(with_noise, matched)
    assert Image.open(tmp_path / "demo" / "comparison.png").size[0] > 6 * 32


def _translate_settings(*options):
    return settings_from_arguments(build_parser().parse_args(["translate", "x.png", "--out", "o", "--source", "a",
                                                              "--target", "b", *options]))


def test_translate_options_are_the_settings_fields_with_the_recommended_defaults(capsys):
    from MedShiftLib.settings import RECOMMENDED
    assert _translate_settings() == TranslationSettings("a", "b", **{k: RECOMMENDED[k] for k in COMMAND_LINE_OPTIONS})
    with pytest.raises(SystemExit):
        main(["translate", "--help"])
    text = capsys.readouterr().out
    for name in COMMAND_LINE_OPTIONS:  # every option is offered, with its default in the help
        assert f"(default {RECOMMENDED[name]})" in " ".join(text.split()), name
    deterministic = TranslationSettings("a", "b").with_preset("deterministic")
    assert _translate_settings("--preset", "deterministic", "--guidance", "2.5", "--contrast-transfer",
                               "--tile-size", "512") == replace(deterministic, guidance_scale=2.5,
                                                                contrast_transfer=True, tile_size=512)


def test_a_preset_gives_the_panels_settings_and_options_given_beside_it_win():
    for name in PRESETS:
        assert _translate_settings("--preset", name) == TranslationSettings("a", "b").with_preset(name)
    mixed = _translate_settings("--preset", "matched-contrast-and-noise", "--guidance", "1.5", "--seed", "4")
    preset = TranslationSettings("a", "b").with_preset("matched-contrast-and-noise")
    assert mixed == replace(preset, guidance_scale=1.5, seed=4)
    assert mixed.noise_matching and mixed.contrast_transfer and mixed.steps == 8


@pytest.mark.parametrize("settings", [
    TranslationSettings("a", "b"),
    TranslationSettings("sim-low", "clinical-normal", tau=0.45, guidance_scale=1.5, steps=8, seed=3,
                        noise_renewal=0.25, resample="none", tile_size=512).with_preset("matched-contrast"),
    TranslationSettings("a", "b", tau=1 / 3, solver="dopri5"),
])
def test_settings_written_as_options_parse_back_to_the_same_settings(settings):
    args = build_parser().parse_args(["translate", "x.png", "--out", "o", *translation_arguments(settings)])
    assert settings_from_arguments(args) == settings
