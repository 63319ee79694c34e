"""The `medshift` command: translate, info, train, simulate, fetch-ct, demo, evaluate, domain-contrast.

Errors a user can fix print one line (`medshift: error: ...`) and exit with status 2; `--debug` shows
the traceback instead. Exit status 3 means the GPU ran out of memory, 130 that the run was interrupted
or cancelled (`--cancel-file`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

from .errors import MedShiftError, TranslationCancelled
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
EXIT_USER_ERROR, EXIT_OUT_OF_MEMORY, EXIT_INTERRUPTED = 2, 3, 130


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
        help_text = f"{meta['help']} (default {default})"
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
        "Translate each INPUT (file or folder of DICOM/NRRD/NIfTI/MHA/PNG/TIFF) from --source to --target; "
        "one output per input in --out, same file name and format."))
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", required=True, help="output folder (created; inputs are never overwritten)")
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
    from .training.config import add_training_arguments
    add_training_arguments(p)

    p = sub.add_parser("simulate", help="write a simulated five-domain skull radiograph data folder")
    from .simulator.cone_beam_projector import DEFAULT_SID_MM, DEFAULT_SOD_MM
    from .simulator.domain_styles import DEFAULT_LOOK, LOOKS
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
                   help="radiograph: the clinical domains processed like skull radiographs (default); legacy: the "
                        "renderer the bundled model was trained on")
    p.add_argument("--clean", action="store_true", help="also write noise-free renderings under OUT_DIR/clean/")
    p.add_argument("--device", default="cpu", help="cpu or cuda for the projector")
    p.add_argument("--preview", metavar="PNG", help="also write subject 0, view 0 in all five domains side by side "
                   "(with --subjects 0: only the picture)")
    p.add_argument("--lao-rao", type=float, help="view angle of the --preview picture (default: the seed's)")
    p.add_argument("--cranial-caudal", type=float, help="view angle of the --preview picture (default: the seed's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("fetch-ct", help="download and convert a real head CT (InVesalius' Cranium, GPL-2)",
                       description=(
        "Run `apt-get download invesalius-examples` (Debian/Ubuntu), check the example head CT 'Cranium' against "
        "its recorded SHA-256 and write it as OUT_DIR/cranium_ct.nrrd (Hounsfield units, LPS) for "
        "`medshift simulate --ct`. The CT is GPL-2 data (docs/simulator.md)."))
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--deb", metavar="FILE", help="an invesalius-examples .deb already downloaded (no apt-get needed)")

    p = sub.add_parser("demo", help="simulate an image, translate it, write a side-by-side picture")
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--model", help="checkpoint; default: the bundled model")
    p.add_argument("--source", default="sim-low", help="domain the demo image is rendered in")
    p.add_argument("--target", default="clinical-normal", help="domain to translate it into")
    p.add_argument("--tau", type=float, default=DEFAULTS["tau"], help="structure (0.6) <-> realism (0.3) trade-off")
    p.add_argument("--seed", type=int, default=7, help="seed of the rendered view (the model never saw seed 7)")
    p.add_argument("--ct", help="head CT to render the input from (default: the shipped Cranium CT when present, "
                                "else the procedural phantom)")
    p.add_argument("--phantom", action="store_true", help="render the input from the procedural head phantom")
    p.add_argument("--look", choices=LOOKS, default=DEFAULT_LOOK,
                   help="simulator look of the input (legacy: the renderer the bundled model was trained on)")

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


def _progress_printer(prefix: str):
    def report(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{prefix} step {done}/{total}", end=end, file=sys.stderr, flush=True)
    return report


def _print_warning(text: str) -> None:
    """One warning line on stderr."""
    print(f"warning: {text}", file=sys.stderr, flush=True)


def _emit(kind: str, value: object) -> None:
    """One machine-readable line (`--machine-progress`)."""
    print(f"{kind} {value}", flush=True)


def default_preset_for(model_path: str | None) -> str:
    """DEFAULT_PRESET, or "deterministic" for a model that records no domain noise statistics (which it needs).

    A model that cannot be read gives DEFAULT_PRESET: loading it later says what is wrong with it.
    """
    from .engine.checkpoint import default_model_path, read_checkpoint_info
    try:
        info = read_checkpoint_info(Path(model_path) if model_path else default_model_path())
    except MedShiftError:
        return DEFAULT_PRESET
    measured = info.statistics is not None and info.statistics.noise_power is not None
    return DEFAULT_PRESET if measured else "deterministic"


def run_translate(args: argparse.Namespace) -> int:
    """`medshift translate`."""
    from .engine.ode_solvers import CancelToken
    from .pipeline.file_translation import collect_inputs, translate_files
    machine = args.machine_progress
    if machine:
        _emit("PID", os.getpid())
    settings = settings_from_arguments(args, default_preset_for(args.model))
    files = collect_inputs(args.inputs)
    started = time.perf_counter()
    written = translate_files(files, args.out, settings, model_path=args.model, device=args.device,
                              frame=args.frame, progress_factory=None if machine else _progress_printer,
                              cancel=CancelToken(args.cancel_file),
                              progress=(lambda done, total: _emit("PROGRESS", f"{done}/{total}")) if machine else None,
                              on_device=(lambda text: _emit("DEVICE", text)) if machine else None,
                              on_warning=(lambda text: _emit("WARNING", text)) if machine else _print_warning,
                              strict=args.strict)
    for path in written:
        if machine:
            _emit("OUTPUT", path)
        else:
            print(path)
    print(f"translated {len(written)} image(s) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def run_info(args: argparse.Namespace) -> int:
    """`medshift info`."""
    from .engine.checkpoint import default_model_path, read_checkpoint_info
    from .engine.domain_statistics import statistics_path
    from .engine.network import VelocityUNet, count_parameters
    path = Path(args.checkpoint) if args.checkpoint else default_model_path()
    info = read_checkpoint_info(path)
    if args.json:
        print(json.dumps(json.loads(info.to_json()), indent=2))
        return 0
    print(f"checkpoint        {path}")
    print(f"format version    {info.format_version}")
    print("domains           " + ", ".join(f"{i}:{d}" for i, d in enumerate(info.domains)))
    print(f"resolution        {info.resolution} px")
    spacing = f"{info.pixel_spacing_mm:g} mm" if info.pixel_spacing_mm else "unknown (resampled by field of view)"
    print(f"pixel spacing     {spacing}")
    print(f"parameters        {count_parameters(VelocityUNet(info.config)) / 1e6:.2f} M")
    print("model config      " + ", ".join(f"{k}={v}" for k, v in info.config.to_dict().items()))
    print("intensity         " + ", ".join(f"{k}={v}" for k, v in info.intensity.items()))
    statistics_file = statistics_path(path)
    where = f"in {statistics_file}" if statistics_file.is_file() else "in the checkpoint's metadata (older format)"
    contrast = (f"recorded {where} (--contrast-transfer available)" if info.statistics
                else "not recorded (see domain-contrast)")
    print(f"domain contrast   {contrast}")
    noise = ("recorded (--noise-matching available)" if info.statistics and info.statistics.noise_power
             else "not recorded (see domain-contrast)")
    print(f"domain noise      {noise}")
    print("provenance")
    for line in provenance_lines(info.provenance):
        print(line)
    return 0


def provenance_lines(provenance: dict, indent: str = "  ", depth: int = 2) -> list[str]:
    """A checkpoint's provenance as 'key: value' lines, nested dicts indented up to `depth` levels."""
    lines = []
    for key, value in provenance.items():
        if isinstance(value, dict) and depth > 0:
            lines.append(f"{indent}{key}:")
            lines.extend(provenance_lines(value, indent + "  ", depth - 1))
        elif isinstance(value, dict):
            lines.append(f"{indent}{key}: {len(value)} entries (medshift info --json shows them)")
        elif isinstance(value, float):
            lines.append(f"{indent}{key}: {value:.4g}")
        elif isinstance(value, list):
            lines.append(f"{indent}{key}: {', '.join(str(v) for v in value)}")
        else:
            lines.append(f"{indent}{key}: {value}")
    return lines


def _view_options(args: argparse.Namespace):
    """ViewOptions of `medshift simulate`'s view and geometry options."""
    from .simulator.views import ViewOptions
    if args.fov_mm is not None and args.fov_mm <= 0:
        raise MedShiftError(f"--fov-mm {args.fov_mm:g}: the detector width must be positive")
    spacings = (args.fov_mm / args.size,) if args.fov_mm else args.pixel_pitch_mm
    return ViewOptions(kind=args.views, pixel_spacings_mm=tuple(spacings) if spacings else None,
                       sid_mm=args.sid_mm, sod_mm=args.sod_mm)


def run_simulate(args: argparse.Namespace) -> int:
    """`medshift simulate`."""
    from .simulator.simulation import render_domain_strip, simulate_dataset
    views = _view_options(args)
    if args.preview:
        try:
            print(render_domain_strip(args.preview, seed=args.seed, size=args.size, ct_path=args.ct,
                                      lao_rao_deg=args.lao_rao, cranial_caudal_deg=args.cranial_caudal,
                                      device=args.device, views=views, look=args.look))
        except ValueError as exc:  # view angles outside the C-arm range
            raise MedShiftError(str(exc)) from None
        if args.subjects == 0:
            return 0
    out = simulate_dataset(args.out_dir, subjects=args.subjects, views_per_subject=args.views_per_subject,
                           size=args.size, seed=args.seed, ct_path=args.ct, clean=args.clean,
                           progress=not args.quiet, device=args.device, views=views,
                           phantoms_fraction=args.phantoms_fraction, vary_anatomy=not args.no_anatomy_variation,
                           look=args.look)
    print(out)
    return 0


def run_fetch_ct(args: argparse.Namespace) -> int:
    """`medshift fetch-ct`."""
    from .simulator.invesalius_ct import fetch_cranium_ct
    print(fetch_cranium_ct(args.out_dir, deb=args.deb))
    return 0


def run_train(args: argparse.Namespace) -> int:
    """`medshift train`."""
    from .training.distributed import ProcessPlace
    from .training.run import train_from_arguments
    best = train_from_arguments(args)
    if ProcessPlace.from_environment().rank == 0:  # under torchrun, one line from the writing process
        print(best)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """`medshift demo`."""
    from .demo import run_demo as demo
    from .simulator.invesalius_ct import shipped_ct_path
    ct = None if args.phantom else (args.ct or shipped_ct_path())
    for path in demo(args.out, model_path=args.model, source=args.source, target=args.target, tau=args.tau,
                     seed=args.seed, ct_path=ct, look=args.look):
        print(path)
    return 0


def _parse_pairs(texts: list[str] | None) -> tuple[tuple[str, str], ...] | None:
    if not texts:
        return None
    pairs = []
    for text in texts:
        source, sep, target = text.partition(":")
        if not sep or not source or not target:
            raise MedShiftError(f"pair {text!r}: write it as SOURCE:TARGET, e.g. sim-low:clinical-normal")
        pairs.append((source, target))
    return tuple(pairs)


def run_evaluate(args: argparse.Namespace) -> int:
    """`medshift evaluate`."""
    from .engine.checkpoint import default_model_path, load_checkpoint
    from .engine.devices import resolve_device
    from .evaluation.ddib import load_ddib_models, parse_ddib_models
    from .evaluation.domain_classifier import ClassifierTraining
    from .evaluation.protocol import EvaluationSettings, require_evaluation_packages, run_evaluation
    require_evaluation_packages()
    device = resolve_device(args.device)
    model, info = load_checkpoint(args.model or default_model_path(), device)
    ddib = load_ddib_models(parse_ddib_models(args.ddib_models), info.domains, info.resolution, device)
    settings = EvaluationSettings(taus=tuple(args.taus), guidance_scales=tuple(args.guidance), solver=args.solver,
                                  steps=args.steps, schedule=args.schedule,
                                  noise_renewals=tuple(args.noise_renewal),
                                  contrast_transfers=tuple(dict.fromkeys(c == "on" for c in args.contrast_transfer)),
                                  noise_matchings=tuple(dict.fromkeys(c == "on" for c in args.noise_matching)),
                                  ddib_taus=tuple(args.ddib_taus), pairs=_parse_pairs(args.pairs),
                                  max_views=args.max_views,
                                  classifier=ClassifierTraining(steps=args.classifier_steps, seed=args.seed),
                                  seed=args.seed)
    run_evaluation(model, info, args.data, args.train_data, args.out, settings,
                   log=lambda text: print(text, file=sys.stderr), ddib=ddib)
    print(Path(args.out) / "results.md")
    return 0


def run_domain_contrast(args: argparse.Namespace) -> int:
    """`medshift domain-contrast`."""
    from .training.domain_statistics import record_domain_statistics
    print(record_domain_statistics(args.model, args.data, args.out, args.images_per_domain, args.overwrite))
    return 0


COMMANDS = {"translate": run_translate, "info": run_info, "train": run_train, "simulate": run_simulate,
            "fetch-ct": run_fetch_ct, "demo": run_demo, "evaluate": run_evaluate,
            "domain-contrast": run_domain_contrast}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `medshift` command."""
    args = build_parser().parse_args(argv)
    machine = getattr(args, "machine_progress", False)
    try:
        return COMMANDS[args.command](args)
    except TranslationCancelled:
        print("medshift: cancelled; nothing more was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MedShiftError as exc:
        if args.debug:
            raise
        if machine:
            _emit("ERROR", " ".join(str(exc).split()))
        print(f"medshift: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("medshift: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if type(exc).__name__ != "OutOfMemoryError" or args.debug:  # torch.cuda.OutOfMemoryError
            raise
        message = "out of GPU memory; use --device cpu, or a smaller --tile-size"
        if machine:
            _emit("ERROR", message)
        print(f"medshift: error: {message}", file=sys.stderr)
        return EXIT_OUT_OF_MEMORY


if __name__ == "__main__":
    sys.exit(main())
