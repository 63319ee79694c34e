"""The `medshift` command: translate, info, train, simulate, fetch-ct, demo, evaluate, domain-contrast.

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
from pathlib import Path

from .cli_checks import check_command_options
from .cli_errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OUT_OF_MEMORY,
    EXIT_USER_ERROR,
    escape_machine_text,
    run_guarded,
)
from .cli_parser import build_parser, settings_from_arguments, translation_arguments
from .errors import MedShiftError
from .io.output_guard import refuse_outputs_over_inputs
from .settings import DEFAULT_PRESET

PLANNING_PROGRESS_FROM = 2000
TRAINING_OUTPUTS = ("latest.safetensors", "best.safetensors", "training_state.safetensors")
__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OUT_OF_MEMORY", "EXIT_USER_ERROR", "build_parser", "main",
           "settings_from_arguments", "translation_arguments"]


def _file_and_folder(path: str | Path | None) -> tuple[str | Path | None, str | Path | None]:
    """(path, None) for a file or a path that is not there yet, (None, path) for a folder, for the output checks."""
    return (None, path) if path is not None and os.path.isdir(path) else (path, None)


def _progress_printer(prefix: str):
    def report(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{prefix} step {done}/{total}", end=end, file=sys.stderr, flush=True)
    return report


def _planning_printer(count: int):
    """Progress of the output planning on standard error, for batches large enough to take a while."""
    if count < PLANNING_PROGRESS_FROM:
        return None
    return lambda done, total: print(f"\rmedshift: planning outputs {done}/{total}", end="\n" if done == total else "",
                                     file=sys.stderr, flush=True)


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
    return DEFAULT_PRESET if measured and info.statistics.noise_level is not None else "deterministic"


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
            _emit("OUTPUT", escape_machine_text(str(detail)))  # a newline in a name cannot fake another line
        elif kind == "written":
            print(detail, flush=True)
        else:
            if machine:
                _emit("ERROR", " ".join(str(detail).split()))
            print(f"medshift: {'skipped' if kind == 'skipped' else 'error'}: {detail}", file=sys.stderr, flush=True)

    settings = settings_from_arguments(args, default_preset_for(args.model)).validated()  # before any input is read
    files = collect_inputs(args.inputs)
    started = time.perf_counter()
    report = translate_files(files, args.out, settings, model_path=args.model, device=args.device,
                             frame=args.frame, progress_factory=None if machine else _progress_printer,
                             cancel=CancelToken(args.cancel_file),
                             progress=(lambda done, total: _emit("PROGRESS", f"{done}/{total}")) if machine else None,
                             on_device=(lambda text: _emit("DEVICE", text)) if machine else None,
                             overwrite=args.overwrite, output_format=args.output_format, on_outcome=on_outcome,
                             on_warning=(lambda text: _emit("WARNING", " ".join(text.split()))) if machine
                             else _print_warning,
                             strict=args.strict, planning_progress=_planning_printer(len(files)))
    print(f"medshift: {report.summary()} of {len(files)} input(s) in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return EXIT_FAILED if report.failed or report.skipped else 0


def run_info(args: argparse.Namespace) -> int:
    """`medshift info`."""
    from .engine.checkpoint import default_model_path, read_checkpoint_info
    from .engine.domain_statistics import statistics_path
    from .engine.network import VelocityUNet, count_parameters
    from .simulator.model_look import look_record_line
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
    noise_recorded = info.statistics and info.statistics.noise_power and info.statistics.noise_level
    noise = ("recorded (--noise-matching available)" if noise_recorded
             else "not recorded (see domain-contrast)")
    print(f"domain noise      {noise}")
    look = look_record_line(info)
    if look is not None:
        print(f"simulator look    {look}")
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
    spacings = (args.fov_mm / args.size,) if args.fov_mm else args.pixel_pitch_mm
    return ViewOptions(kind=args.views, pixel_spacings_mm=tuple(spacings) if spacings else None,
                       sid_mm=args.sid_mm, sod_mm=args.sod_mm)


def run_simulate(args: argparse.Namespace) -> int:
    """`medshift simulate`."""
    from .simulator.simulation import render_domain_strip, simulate_dataset
    _check_simulate_options(args)
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
    from .simulator.head_cts import HEAD_CTS, fetch_head_cts
    from .simulator.invesalius_ct import OUTPUT_NAME as CRANIUM_NAME
    from .simulator.visible_human_ct import ACKNOWLEDGEMENT
    from .simulator.visible_human_ct import OUTPUT_NAME as VISIBLE_HUMAN_NAME
    refuse_outputs_over_inputs(output_files=[("OUT_DIR", Path(args.out_dir) / name)
                                             for name in (CRANIUM_NAME, VISIBLE_HUMAN_NAME)],
                               input_files=[("--deb", args.deb), ("--wheel", args.wheel)])
    given = tuple(name for name, file in (("visible-human", args.wheel), ("cranium", args.deb)) if file)
    which = (args.only,) if args.only else (given or HEAD_CTS)
    if "visible-human" in which:  # said first, so it is said even when the other CT then fails
        print(f"Visible Human head: {ACKNOWLEDGEMENT}.", file=sys.stderr)
    for path in fetch_head_cts(args.out_dir, which, deb=args.deb, wheel=args.wheel):
        print(path)
    return 0


def _check_simulate_options(args: argparse.Namespace) -> None:
    """MedShiftError for `medshift simulate` options that cannot work, before anything is rendered."""
    from .atomic_files import check_writable_folder
    from .engine.devices import resolve_device
    resolve_device(args.device)  # MedShiftError naming the fix when CUDA is asked for but absent
    out = Path(args.out_dir)
    cts = [_file_and_folder(ct) for ct in args.ct or []]
    refuse_outputs_over_inputs(output_files=[("OUT_DIR", out / "manifest.csv" if args.subjects else None),
                                             ("--preview", args.preview)],
                               output_folders=[("OUT_DIR", out if args.subjects else None)],
                               input_files=[("--ct", file) for file, _ in cts],
                               input_folders=[("--ct", folder) for _, folder in cts])
    if args.subjects and out.exists() and not out.is_dir():
        raise MedShiftError(f"OUT_DIR {out} is a file, not a folder; give a folder for the data set")
    if args.subjects:
        check_writable_folder(out)


def run_train(args: argparse.Namespace, argv: list[str]) -> int:
    """`medshift train` (with --processes N, N processes started here, each running it without --processes)."""
    from .training.distributed import ProcessPlace, launched_by_torchrun
    refuse_outputs_over_inputs(output_files=[("--out", Path(args.out) / name) for name in TRAINING_OUTPUTS],
                               input_files=[("--init-from", getattr(args, "init_from", None))])
    if args.processes != 1 and not launched_by_torchrun():
        from .training.launcher import launch_training_processes, without_processes_option
        return launch_training_processes(without_processes_option(argv), args.processes)
    from .simulator.training_views import options_from_arguments, simulated_data
    from .training.run import folder_data, train_from_arguments
    options = options_from_arguments(args)  # --simulate: images rendered while training
    args.simulate_options = options.to_dict() if options else None
    best = train_from_arguments(args, simulated_data(options) if options else folder_data)
    if ProcessPlace.from_environment().rank == 0:  # under torchrun, one line from the writing process
        print(best)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """`medshift demo`."""
    from .demo import run_demo as demo
    from .simulator.head_cts import shipped_ct_path
    ct = None if args.phantom else (args.ct or shipped_ct_path())
    ct_file, ct_folder = _file_and_folder(ct)
    refuse_outputs_over_inputs(output_folders=[("--out", args.out)], input_files=[("--model", args.model),
                               ("--ct", ct_file)], input_folders=[("--ct", ct_folder)])
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
    from .atomic_files import check_writable_folder
    from .engine.checkpoint import default_model_path, load_checkpoint
    from .engine.devices import resolve_device
    from .evaluation.ddib import load_ddib_models, parse_ddib_models
    from .evaluation.domain_classifier import ClassifierTraining
    from .evaluation.protocol import CLASSIFIER_FILE, EvaluationSettings, require_evaluation_packages, run_evaluation
    refuse_outputs_over_inputs(output_files=[("--out", Path(args.out) / CLASSIFIER_FILE)],
                               output_folders=[("--out", args.out)], input_files=[("--model", args.model)],
                               input_folders=[("--data", args.data), ("--train-data", args.train_data)])
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


COMMANDS = {"translate": run_translate, "info": run_info, "simulate": run_simulate, "fetch-ct": run_fetch_ct,
            "demo": run_demo, "evaluate": run_evaluate, "domain-contrast": run_domain_contrast}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `medshift` command."""
    args = build_parser().parse_args(argv)
    machine = getattr(args, "machine_progress", False)
    if args.command == "train":
        argv = list(sys.argv[1:] if argv is None else argv)
        return run_guarded(lambda: check_command_options(args) or run_train(args, argv), args.debug,
                           voice=_training_voice)
    return run_guarded(lambda: check_command_options(args) or COMMANDS[args.command](args), args.debug, machine)


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
