"""
Reading a `shipments import` file: CSV with a header row, or JSON lines, each record
tagged with its line number in the file (header = line 1), so every complaint can name it.

Pure and streaming: records come out one at a time, so a million-line file never sits in
memory. The daemon does the real validation; this only reports what cannot even be parsed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

FIELDS = ("carrier_code", "tracking_number", "reference", "provider")
# carrier_code may be left out (the column, or a cell): a provider account that detects carriers finds it.
REQUIRED = ("tracking_number",)
CSV_EXTENSIONS = (".csv", ".tsv")
JSON_EXTENSIONS = (".jsonl", ".ndjson", ".json")


class ImportFormatError(ValueError):
    """The file as a whole cannot be read (no usable header); nothing is sent."""


@dataclass(frozen=True)
class Line:
    """One record of the file: `record` to send, or `error` saying why it could not be parsed."""

    line: int
    record: Any = None
    error: str = ""


def detect_format(name: str, first_line: str) -> str:
    """ "csv" or "jsonl": by extension, else by content (a first line opening with `{` is JSON lines)."""
    lowered = name.lower()
    if lowered.endswith(CSV_EXTENSIONS):
        return "csv"
    if lowered.endswith(JSON_EXTENSIONS):
        return "jsonl"
    return "jsonl" if first_line.lstrip("\ufeff \t").startswith("{") else "csv"


def read_records(name: str, lines: Iterable[str]) -> Iterator[Line]:
    """
    Every record of the file called *name* (the name only picks the format), in file order.

    *lines* are the file's lines as read in text mode with `newline=""`, so a quoted CSV
    field may span lines; each record carries the number of the line it starts on.
    Raises ImportFormatError when a CSV header lacks tracking_number.
    """
    numbered = enumerate(lines, start=1)
    head: list[tuple[int, str]] = []
    for number, text in numbered:
        head.append((number, text))
        if text.strip():
            break
    else:
        return  # empty, or only blank lines
    source = chain(head[-1:], numbered)  # leading blank lines dropped; numbers travel with the lines
    if detect_format(name, head[-1][1]) == "jsonl":
        yield from _jsonl(source)
    else:
        yield from _csv(source, tab=name.lower().endswith(".tsv"))


def _jsonl(source: Iterator[tuple[int, str]]) -> Iterator[Line]:
    for number, text in source:
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            yield Line(number, error=f"not valid JSON: {exc}")
            continue
        except RecursionError:  # json's parser recurses per level: a line of 100k '[' ends here
            yield Line(number, error="not valid JSON: nested too deeply")
            continue
        if isinstance(data, dict):
            data = {k: data[k] for k in FIELDS if k in data}
        yield Line(number, record=data)  # anything else is rejected by the daemon with its reason


def _csv(source: Iterator[tuple[int, str]], *, tab: bool) -> Iterator[Line]:
    current = 0

    def texts() -> Iterator[str]:
        nonlocal current
        for number, text in source:
            current = number  # the reader has consumed up to this line when it yields a row
            yield text

    it = texts()
    first = next(it)
    delimiter = (
        "\t" if tab or ("\t" in first and "," not in first) else ";" if ";" in first and "," not in first else ","
    )
    reader = csv.reader(chain([first], it), delimiter=delimiter)
    header = [h.strip().lstrip("\ufeff").lower() for h in next(reader)]
    missing = [f for f in REQUIRED if f not in header]
    if missing:
        found = ", ".join(h for h in header if h) or "nothing"
        raise ImportFormatError(
            f"line {current}: the header row must name {' and '.join(REQUIRED)} (missing {', '.join(missing)};"
            f" found {found})"
        )
    index = {name: header.index(name) for name in FIELDS if name in header}
    ended = current
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Line(ended + 1, error=f"not valid CSV: {exc}")
            ended = current
            continue
        start, ended = ended + 1, current
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header) and any(cell.strip() for cell in row[len(header) :]):
            yield Line(start, error=f"expected {len(header)} fields as in the header, found {len(row)}")
            continue
        record = {name: row[i].strip() for name, i in index.items() if i < len(row) and row[i].strip()}
        yield Line(start, record=record)
