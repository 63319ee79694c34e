"""Text and numbers of a derived DICOM series within their value representations."""
from __future__ import annotations

from pydicom.dataset import Dataset

LONG_STRING_LIMIT = 64  # LO: SeriesDescription
DERIVATION_DESCRIPTION_LIMIT = 1024  # ST
DERIVED_SERIES_OFFSET = 1000  # the derived series' number: the source's plus this (a common convention)


def fit_long_string(text: str) -> str:
    """`text` within the 64 characters of a DICOM LO value (cut at a word boundary, with an ellipsis)."""
    if len(text) <= LONG_STRING_LIMIT:
        return text
    cut = text[:LONG_STRING_LIMIT - 3]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "..."


def derived_series_number(reference: Dataset) -> int:
    """A SeriesNumber for a series derived from `reference`: its number plus 1000, within IS's range."""
    try:
        number = int(reference.get("SeriesNumber") or 0)
    except (TypeError, ValueError):
        number = 0
    return (number % 1000) + DERIVED_SERIES_OFFSET if number >= 0 else DERIVED_SERIES_OFFSET
