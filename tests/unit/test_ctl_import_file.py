"""Reading `shipments import` files: formats, line numbers, and what is refused before anything is sent."""

from __future__ import annotations

import io

import pytest

from shiptrackd.ctl.import_file import ImportFormatError, detect_format, read_records


def lines(text: str) -> io.StringIO:
    return io.StringIO(text, newline="")


def test_csv_records_carry_their_file_line_numbers() -> None:
    """The header is line 1; blank lines and a quoted field spanning two lines keep later numbers true."""
    text = 'carrier_code,tracking_number,reference\nups,1ZA,order 1\n\nfedex,FX1,"two\nlines"\nusps , 9400X ,\n'
    got = [(r.line, r.record) for r in read_records("x.csv", lines(text))]
    assert got == [
        (2, {"carrier_code": "ups", "tracking_number": "1ZA", "reference": "order 1"}),
        (4, {"carrier_code": "fedex", "tracking_number": "FX1", "reference": "two\nlines"}),
        (6, {"carrier_code": "usps", "tracking_number": "9400X"}),
    ]


def test_csv_header_is_found_in_any_order_and_case_with_a_bom() -> None:
    """Header names match case-insensitively in any order, after a UTF-8 BOM; extra columns are ignored."""
    text = "\ufeffNote,Tracking_Number,CARRIER_CODE\nhello,1ZB,ups\n"
    assert [r.record for r in read_records("x.csv", lines(text))] == [{"carrier_code": "ups", "tracking_number": "1ZB"}]


def test_csv_without_the_required_header_is_refused() -> None:
    """A header lacking tracking_number stops the import before anything is sent, naming what is missing."""
    with pytest.raises(ImportFormatError, match="missing tracking_number"):
        list(read_records("x.csv", lines("carrier_code,number\nups,1Z\n")))


def test_csv_may_leave_the_carrier_out_for_a_provider_to_detect() -> None:
    """Without a carrier_code column (or with an empty cell) a record has no carrier: the daemon's detection decides."""
    assert [r.record for r in read_records("x.csv", lines("tracking_number\n1ZB\n"))] == [{"tracking_number": "1ZB"}]
    got = [r.record for r in read_records("x.csv", lines("carrier_code,tracking_number\n,1ZC\n"))]
    assert got == [{"tracking_number": "1ZC"}]


def test_csv_row_with_too_many_fields_is_invalid() -> None:
    """A row with more non-empty fields than the header is reported on its own line; trailing empties are fine."""
    text = "carrier_code,tracking_number\nups,1ZA,extra\nups,1ZB,,\n"
    got = list(read_records("x.csv", lines(text)))
    assert (got[0].line, got[0].error) == (2, "expected 2 fields as in the header, found 3")
    assert (got[1].line, got[1].record) == (3, {"carrier_code": "ups", "tracking_number": "1ZB"})


def test_json_lines_report_bad_json_by_line() -> None:
    """Each JSON line is one record; an unparsable line is invalid with its number; other keys are dropped."""
    text = '{"carrier_code": "ups", "tracking_number": "1ZA", "id": "x"}\n\nnot json\n["a list"]\n'
    got = list(read_records("x.jsonl", lines(text)))
    assert (got[0].line, got[0].record) == (1, {"carrier_code": "ups", "tracking_number": "1ZA"})
    assert got[1].line == 3 and got[1].error.startswith("not valid JSON")
    assert (got[2].line, got[2].record) == (4, ["a list"])  # the daemon rejects it with its reason


@pytest.mark.parametrize(
    ("name", "first", "expected"),
    [
        ("a.csv", '{"x": 1}', "csv"),
        ("a.jsonl", "carrier_code,tracking_number", "jsonl"),
        ("-", '  {"carrier_code": "ups"}', "jsonl"),
        ("data.txt", "carrier_code,tracking_number", "csv"),
    ],
)
def test_format_detection(name: str, first: str, expected: str) -> None:
    """The extension decides; without one the first line does (`{` means JSON lines)."""
    assert detect_format(name, first) == expected


def test_empty_input_has_no_records() -> None:
    """An empty or blank file yields nothing (and is not an error)."""
    assert list(read_records("x.csv", lines("\n\n"))) == []


def test_a_deeply_nested_json_line_is_one_invalid_line_not_a_crash() -> None:
    """A line of 100,000 '[' is reported as that line's error and the lines after it still import."""
    text = "[" * 100_000 + "\n" + '{"carrier_code": "ups", "tracking_number": "1ZOK"}\n'
    got = list(read_records("x.jsonl", lines(text)))
    assert (got[0].line, got[0].error) == (1, "not valid JSON: nested too deeply")
    assert (got[1].line, got[1].record) == (2, {"carrier_code": "ups", "tracking_number": "1ZOK"})


def test_a_huge_tracking_number_is_not_echoed_in_full() -> None:
    """A 10,000-character tracking number comes back cut to 64 characters and an ellipsis, with its length."""
    from shiptrackd.models import NewShipment

    with pytest.raises(ValueError) as caught:
        NewShipment.parse({"carrier_code": "ups", "tracking_number": "9" * 10_000})
    message = str(caught.value)
    assert len(message) < 200
    assert "9" * 64 + "'…" in message and "(10000 characters)" in message
