"""The `medshift` command: translate, info, train, simulate, demo, evaluate, domain-contrast.

Errors a user can fix print one line (`medshift: error: ...`) and exit with status 2; `--debug` shows
the traceback instead. Exit status 1 means some inputs of a batch were not translated (each named on
its own line) or the system refused (disk full), 3 that the GPU ran out of memory, 130 that the run was
interrupted or cancelled (`--cancel-file`), 143 that it was terminated; see cli_errors.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

from .cli_errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OUT_OF_MEMORY, EXIT_USER_ERROR, run_guarded
from .errors import MedShiftError
from .pipeline.output_plan import OUTPUT_FORMATS
from .settings import COMMAND_LINE_OPTIONS, DEFAULTS, PRESETS, SCHEDULES, SOLVERS, TranslationSettings

SETTINGS_FIELDS = {f.name: f for f in fields(TranslationSettings)}
MIN_SIMULATED_SIZE, MAX_SIMULATED_SIZE = 16, 4096
__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OUT_OF_MEMORY", "EXIT_USER_ERROR", "main"]


def _add_translation_options(p: argparse.ArgumentParser) -> None:
    """--model, --source, --target, --preset, --device and one option per TranslationSettings field."""
    p.add_argument("--model", help="checkpoint (.safetensors); default: the bundled model")
    p.add_argument("--source", required=True, help="domain of the input images (see `medshift info`)")
    p.add_argument("--target", required=True, help="domain to translate into")
    p.add_argument("--preset", choices=tuple(PRESETS),
                   help="start from a named setting (the panel's buttons); options given as well override it: "
                        + "; ".join(f"{name}: {_describe_preset(values)}" for name, values in PRESETS.items()))
    for name in COMMAND_LINE_OPTIONS:
        meta, default = SETTINGS_FIELDS[name].metadata, DEFAULTS[name]
        help_text = f"{meta['help']} (default {default})"
        # default None: an option not given leaves the preset's (or the settings') value
        if isinstance(default, bool):
            p.add_argument(meta["flag"], dest=name, action="store_true", default=None, help=help_text)
        else:
            p.add_argument(meta["flag"], dest=name, type=type(default), choices=meta["choices"], default=None,
                           help=help_text)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def _describe_preset(values: dict) -> str:
    return " ".join(f"{SETTINGS_FIELDS[k].metadata['flag']}{'' if v is True else f' {v}'}"
                    for k, v in values.items() if v is not False)


def settings_from_arguments(args: argparse.Namespace) -> TranslationSettings:
    """TranslationSettings of `medshift translate` options: defaults, then --preset, then the options given."""
    settings = TranslationSettings(args.source, args.target)
    if args.preset:
        settings = settings.with_preset(args.preset)
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
            options += [flag] if value else []
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
        "one output per input in --out, same file name and format. A bad input is reported and the others "
        "are still translated; the exit status is then 1."))
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", required=True, help="output folder (created; inputs are never overwritten)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that exist already (default: skip them, and exit with status 1)")
    p.add_argument("--format", dest="output_format", choices=tuple(OUTPUT_FORMATS),
                   help="write every output in this format instead of its input's (e.g. nrrd for a float TIFF)")
    p.add_argument("--frame", type=int, default=None, help="frame of a multi-frame (cine) DICOM to translate")
    _add_translation_options(p)
    p.add_argument("--machine-progress", action="store_true",
                   help="for programs running this command: print 'PID n', 'DEVICE text', 'PROGRESS done/total' "
                        "(solver steps over all inputs) and 'OUTPUT path' lines on standard output, errors as "
                        "'ERROR message'")
    p.add_argument("--cancel-file", metavar="PATH",
                   help="stop within one solver step once this file exists (exit status 130, nothing more written)")

    p = sub.add_parser("info", help="show what a checkpoint holds")
    p.add_argument("checkpoint", nargs="?", help="checkpoint (.safetensors); default: the bundled model")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")

    p = sub.add_parser("train", help="train a model on a data folder (one sub-folder per domain)")
    from .training.config import add_training_arguments
    add_training_arguments(p)
    p.add_argument("--processes", type=int, default=1,
                   help="train in this many processes on this machine (one per GPU with --device cuda), like "
                        "`torchrun --standalone --nproc_per_node N`, with one-line errors")

    p = sub.add_parser("simulate", help="write a simulated five-domain skull radiograph data folder")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--subjects", type=int, default=10)
    p.add_argument("--views-per-subject", type=int, default=4)
    p.add_argument("--size", type=int, default=256, help="detector size in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ct", help="a head CT (NRRD/NIfTI/MHA file or DICOM series folder) instead of the phantom")
    p.add_argument("--clean", action="store_true", help="also write noise-free renderings under OUT_DIR/clean/")
    p.add_argument("--device", default="cpu", help="cpu or cuda for the projector")
    p.add_argument("--preview", metavar="PNG", help="also write subject 0, view 0 in all five domains side by side "
                   "(with --subjects 0: only the picture)")
    p.add_argument("--lao-rao", type=float, help="view angle of the --preview picture (default: the seed's)")
    p.add_argument("--cranial-caudal", type=float, help="view angle of the --preview picture (default: the seed's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("demo", help="simulate an image, translate it, write a side-by-side picture")
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--model", help="checkpoint; default: the bundled model")
    p.add_argument("--source", default="sim-low")
    p.add_argument("--target", default="clinical-normal")
    p.add_argument("--tau", type=float, default=DEFAULTS["tau"])
    p.add_argument("--seed", type=int, default=7)

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
    p.add_argument("--taus", type=float, nargs="+", default=[0.3, 0.45, 0.6])
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 1.5, 2.0], help="guidance scales to sweep")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="solver steps per leg")
    p.add_argument("--solver", choices=SOLVERS, default=DEFAULTS["solver"])
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
    p.add_argument("--seed", type=int, default=0)
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
    p.add_argument("--images-per-domain", type=int, default=200)
    return parser


def _progress_printer(prefix: str):
    def report(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{prefix} step {done}/{total}", end=end, file=sys.stderr, flush=True)
    return report


def _emit(kind: str, value: object) -> None:
    """One machine-readable line (`--machine-progress`)."""
    print(f"{kind} {value}", flush=True)


def run_translate(args: argparse.Namespace) -> int:
    """`medshift translate`: each output's path is printed as it is written, each failure as one line naming
    its input, then a summary; exit status 1 when an input was skipped or failed."""
    from .engine.ode_solvers import CancelToken
    from .pipeline.file_translation import collect_inputs, translate_files
    machine = args.machine_progress
    if machine:
        _emit("PID", os.getpid())

    def on_outcome(kind: str, source: Path, detail: Path | str) -> None:
        if kind == "written" and machine:
            _emit("OUTPUT", detail)
        elif kind == "written":
            print(detail, flush=True)
        else:
            if machine:
                _emit("ERROR", " ".join(str(detail).split()))
            print(f"medshift: {'skipped' if kind == 'skipped' else 'error'}: {detail}", file=sys.stderr, flush=True)

    settings = settings_from_arguments(args)
    files = collect_inputs(args.inputs)
    started = time.perf_counter()
    report = translate_files(files, args.out, settings, model_path=args.model, device=args.device,
                             frame=args.frame, progress_factory=None if machine else _progress_printer,
                             cancel=CancelToken(args.cancel_file),
                             progress=(lambda done, total: _emit("PROGRESS", f"{done}/{total}")) if machine else None,
                             on_device=(lambda text: _emit("DEVICE", text)) if machine else None,
                             overwrite=args.overwrite, output_format=args.output_format, on_outcome=on_outcome)
    print(f"medshift: {report.summary()} of {len(files)} input(s) in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return EXIT_FAILED if report.failed or report.skipped else 0


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
    print(f"model config      {json.dumps(info.config.to_dict())}")
    print(f"intensity         {json.dumps(info.intensity)}")
    statistics_file = statistics_path(path)
    where = f"in {statistics_file}" if statistics_file.is_file() else "in the checkpoint's metadata (older format)"
    contrast = (f"recorded {where} (--contrast-transfer available)" if info.statistics
                else "not recorded (see domain-contrast)")
    print(f"domain contrast   {contrast}")
    noise = ("recorded (--noise-matching available)" if info.statistics and info.statistics.noise_power
             else "not recorded (see domain-contrast)")
    print(f"domain noise      {noise}")
    print(f"provenance        {json.dumps(info.provenance)}")
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    """`medshift simulate`."""
    from .simulator.simulation import render_domain_strip, simulate_dataset
    _check_simulate_options(args)
    if args.preview:
        try:
            print(render_domain_strip(args.preview, seed=args.seed, size=args.size, ct_path=args.ct,
                                      lao_rao_deg=args.lao_rao, cranial_caudal_deg=args.cranial_caudal,
                                      device=args.device))
        except ValueError as exc:  # view angles outside the C-arm range
            raise MedShiftError(str(exc)) from None
        if args.subjects == 0:
            return 0
    out = simulate_dataset(args.out_dir, subjects=args.subjects, views_per_subject=args.views_per_subject,
                           size=args.size, seed=args.seed, ct_path=args.ct, clean=args.clean,
                           progress=not args.quiet, device=args.device)
    print(out)
    return 0


def _check_simulate_options(args: argparse.Namespace) -> None:
    """MedShiftError for `medshift simulate` options that cannot work, before anything is rendered."""
    from .atomic_files import check_writable_folder
    from .engine.devices import resolve_device
    if not MIN_SIMULATED_SIZE <= args.size <= MAX_SIMULATED_SIZE:
        raise MedShiftError(f"--size {args.size}: the simulator renders {MIN_SIMULATED_SIZE}..{MAX_SIMULATED_SIZE} "
                            "pixels a side (256 matches the bundled model)")
    if args.subjects < 0 or args.views_per_subject < 1:
        raise MedShiftError("--subjects must be 0 or more and --views-per-subject at least 1")
    resolve_device(args.device)  # MedShiftError naming the fix when CUDA is asked for but absent
    out = Path(args.out_dir)
    if args.subjects and out.exists() and not out.is_dir():
        raise MedShiftError(f"OUT_DIR {out} is a file, not a folder; give a folder for the data set")
    if args.subjects:
        check_writable_folder(out)


def run_train(args: argparse.Namespace, argv: list[str]) -> int:
    """`medshift train` (with --processes N, N processes started here, each running it without --processes)."""
    from .training.distributed import ProcessPlace, launched_by_torchrun
    if args.processes != 1 and not launched_by_torchrun():
        from .training.launcher import launch_training_processes, without_processes_option
        return launch_training_processes(without_processes_option(argv), args.processes)
    from .training.run import train_from_arguments
    best = train_from_arguments(args)
    if ProcessPlace.from_environment().rank == 0:  # under torchrun, one line from the writing process
        print(best)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """`medshift demo`."""
    from .demo import run_demo as demo
    for path in demo(args.out, model_path=args.model, source=args.source, target=args.target, tau=args.tau,
                     seed=args.seed):
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
    from .atomic_files import check_writable_folder
    from .engine.checkpoint import default_model_path, load_checkpoint
    from .engine.devices import resolve_device
    from .evaluation.ddib import load_ddib_models, parse_ddib_models
    from .evaluation.domain_classifier import ClassifierTraining
    from .evaluation.protocol import EvaluationSettings, require_evaluation_packages, run_evaluation
    require_evaluation_packages()
    check_writable_folder(args.out)  # an unwritable --out fails now, not after the evaluation
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


COMMANDS = {"translate": run_translate, "info": run_info, "simulate": run_simulate,
            "demo": run_demo, "evaluate": run_evaluate, "domain-contrast": run_domain_contrast}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `medshift` command."""
    args = build_parser().parse_args(argv)
    machine = getattr(args, "machine_progress", False)
    if args.command == "train":
        argv = list(sys.argv[1:] if argv is None else argv)
        return run_guarded(lambda: run_train(args, argv), args.debug, voice=_training_voice)
    return run_guarded(lambda: COMMANDS[args.command](args), args.debug, machine)


def _training_voice(exc: BaseException) -> str | None:
    """Under torchrun rank 0 prints the errors every process meets in the common setup; after it, each process
    prints its own (named), and none prints the echo of another's failure."""
    from .cli_errors import is_peer_failure
    from .training.distributed import setup_finished
    rank = os.environ.get("RANK", "0")
    if rank in ("", "0"):
        return "medshift"
    if is_peer_failure(exc) or not setup_finished():
        return None
    return f"medshift (process {rank})"


if __name__ == "__main__":
    sys.exit(main())
