"""Short hex digests of what the simulator renders: one look's parameters (a model's provenance) and the simulator's
files (benchmark caches).

`look_fingerprint(look)` is what `medshift train --simulate` records beside the look's name (simulator/model_look.py
warns when a model's differs from the present one). It digests the look's parameters, not the simulator's code, so a
refactor or a change to another look leaves it alone. `simulator_files_fingerprint` digests every source and data
file of the simulator: any change at all renders a benchmark's cached views again (benchmarks/frontier_sweep.py).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from .domain_styles import LOOK_OBJECT_DETAIL, LOOK_STYLES, check_look
from .xray_physics import ATTENUATION_TABLE, SPECTRA_TABLE

DIGITS = 12
LOOK_FINGERPRINT_KEY = "look_fingerprint"  # where a checkpoint's provenance records it (beside simulate.look)
SIMULATOR_FOLDER = Path(__file__).resolve().parent
SIMULATOR_FILE_KINDS = (".py", ".json", ".npz")


def look_fingerprint(look: str) -> str:
    """12 hex digits of the parameters that decide what `look` renders, the same in every Python run.

    Digests each domain's style in the look (domain_styles: its class and every field's value, defaults included),
    the look's object detail (LOOK_OBJECT_DETAIL) and the simulator's data tables (attenuation, tube spectra). So it
    changes when the look is re-fitted, a style field's default changes or a table is regenerated; it does not change
    with a refactor, or with another look's parameters. It does not catch a change to the rendering code or to its
    module constants (domain_rendering.py, screen_film.py, object_detail.py, ...) that keeps these parameters: such a
    change renders every look differently under the same fingerprint. DomainError for an unknown look.
    """
    check_look(look)
    detail = LOOK_OBJECT_DETAIL[look]
    record = {"styles": {domain: [type(style).__name__, asdict(style)] for domain, style in LOOK_STYLES[look].items()},
              "object_detail": asdict(detail) if detail is not None else None,
              "tables": {table.name: json.loads(table.read_text(encoding="utf-8"))  # parsed: line endings don't count
                         for table in (ATTENUATION_TABLE, SPECTRA_TABLE)}}
    return hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()[:DIGITS]


def simulator_files_fingerprint(*extra: str) -> str:
    """12 hex digits that change with any of the simulator package's source and data files (path and bytes) and with
    the `extra` texts (e.g. the CT files a benchmark renders: name and size)."""
    digest = hashlib.sha1()
    for source in sorted(p for p in SIMULATOR_FOLDER.rglob("*") if p.is_file() and p.suffix in SIMULATOR_FILE_KINDS):
        digest.update(source.relative_to(SIMULATOR_FOLDER).as_posix().encode() + source.read_bytes())
    for text in extra:
        digest.update(text.encode())
    return digest.hexdigest()[:DIGITS]
