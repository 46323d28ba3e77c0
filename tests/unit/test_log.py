"""Logging: text and JSON lines, journald priority prefixes, stdlib routing, secret redaction."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from shiptrackd import log
from shiptrackd.log import register_secret, setup_logging


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test starts without registered secrets, and logging goes back to stderr afterwards."""
    log._secrets.clear()
    log._secrets_by_length.clear()
    yield
    log._secrets.clear()
    log._secrets_by_length.clear()
    setup_logging()


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines(stream)]


def test_json_lines_carry_fields_and_extras(out: io.StringIO) -> None:
    """fmt="json" writes one compact JSON object per line with ts, level, msg, logger and bound extras."""
    setup_logging("INFO", "json", stream=out)
    logger.bind(loop="sync", run_id=7).info("sync done selected={} updated={}", 50, 12)
    logger.bind(shipment="ship_1").warning("late")
    first, second = json_lines(out)
    assert first["level"] == "INFO"
    assert first["msg"] == "sync done selected=50 updated=12"
    assert first["logger"] == __name__
    assert (first["loop"], first["run_id"]) == ("sync", 7)
    assert str(first["ts"]).endswith("Z")
    assert second["shipment"] == "ship_1"
    assert ": " not in lines(out)[0]  # compact separators


def test_json_exception_is_one_string_field(out: io.StringIO) -> None:
    """An exception in JSON mode is a single 'exception' string field, and the record stays one line."""
    setup_logging("INFO", "json", stream=out)
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        logger.exception("loop failed")
    (record,) = json_lines(out)
    assert record["level"] == "ERROR"
    assert "Traceback (most recent call last)" in str(record["exception"])
    assert "RuntimeError: kaput" in str(record["exception"])


def test_text_format_is_readable_and_level_filtered(out: io.StringIO) -> None:
    """Text lines show time, level, logger, message and extras; records below the level are dropped."""
    setup_logging("WARNING", "text", stream=out)
    logger.info("hidden")
    logger.bind(loop="health").warning("slow check")
    (line,) = lines(out)
    assert "WARNING" in line
    assert f"{__name__}: slow check loop=health" in line
    assert "\x1b[" not in line


def test_setup_is_idempotent_and_changes_level(out: io.StringIO) -> None:
    """Calling setup_logging again replaces the handler (no duplicate lines) and applies the new level."""
    setup_logging("INFO", "text", stream=out)
    setup_logging("DEBUG", "text", stream=out)
    logger.debug("once")
    assert len([line for line in lines(out) if "once" in line]) == 1


def test_colour_only_on_a_tty_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text output is coloured on a terminal, and plain when NO_COLOR is set to anything non-empty."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    tty = TtyStringIO()
    setup_logging("INFO", "text", stream=tty)
    logger.warning("colourful")
    assert "\x1b[" in tty.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    tty = TtyStringIO()
    setup_logging("INFO", "text", stream=tty)
    logger.warning("plain")
    assert "\x1b[" not in tty.getvalue()


def test_journald_prefixes_every_traceback_line(out: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under systemd (JOURNAL_STREAM set) every line, traceback lines included, starts with <N>."""
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    setup_logging("DEBUG", "text", stream=out)
    logger.debug("d")
    logger.info("i")
    logger.warning("w")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logger.exception("two\nlines")
    logger.critical("c")
    got = lines(out)
    assert got[0].startswith("<7>") and got[1].startswith("<6>") and got[2].startswith("<4>")
    assert got[-1].startswith("<2>")
    error_lines = got[3:-1]
    assert len(error_lines) >= 5
    assert all(line.startswith("<3>") for line in error_lines), error_lines
    assert any("Traceback" in line for line in error_lines)


def test_journald_prefix_in_json_mode(out: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """JSON lines under journald carry the priority prefix too, followed by the JSON object."""
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    setup_logging("INFO", "json", stream=out)
    logger.error("boom")
    (line,) = lines(out)
    assert line.startswith("<3>{")
    assert json.loads(line[3:])["msg"] == "boom"


def test_inherited_journal_stream_on_a_terminal_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A JOURNAL_STREAM that names another file (inherited by a shell) does not turn on the prefixes."""
    with open(tmp_path / "stderr.log", "w+") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        setup_logging("INFO", "text", stream=stream)
        logger.info("not the journal")
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        setup_logging("INFO", "text", stream=stream)
        logger.info("the journal")
        stream.seek(0)
        first, second = stream.read().splitlines()
    assert not first.startswith("<")
    assert second.startswith("<6>")


def test_stdlib_logging_is_routed(out: io.StringIO) -> None:
    """stdlib loggers (apprise, hypercorn.error, asyncio) reach loguru; httpx/httpcore only from WARNING."""
    setup_logging("DEBUG", "json", stream=out)
    logging.getLogger("apprise").info("Notifying 1 service(s).")
    logging.getLogger("hypercorn.error").warning("socket trouble")
    logging.getLogger("httpx").info('HTTP Request: GET https://x "HTTP/1.1 200 OK"')
    logging.getLogger("httpcore").debug("connect_tcp.started")
    logging.getLogger("httpx").warning("httpx warned")
    records = json_lines(out)
    assert [(r["logger"], r["msg"]) for r in records] == [
        ("apprise", "Notifying 1 service(s)."),
        ("hypercorn.error", "socket trouble"),
        ("httpx", "httpx warned"),
    ]
    assert records[1]["level"] == "WARNING"


@pytest.mark.parametrize(
    ("message", "secret", "kept"),
    [
        ("GET /v1/tracking API-Key: TEST_abc123", "TEST_abc123", "API-Key: ***"),
        ("url=https://x/y?api_key=abc123&id=1", "abc123", "api_key=***&id=1"),
        ("apikey=zz9xyz", "zz9xyz", "apikey=***"),
        ("retrying with token=tok_55aa", "tok_55aa", "token=***"),
        ("login password=hunter2 user=bob", "hunter2", "user=bob"),
        ('{"client_secret": "cs-777"}', "cs-777", '"client_secret": "***"'),
        ("Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi", "Authorization: Bearer ***"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("sent to json://user:s3cr3t@hooks.example.com/x", "s3cr3t", "json://user:***@hooks.example.com/x"),
        ("token_count=5 max_tokens=9", "", "token_count=5 max_tokens=9"),
    ],
)
def test_redaction_patterns(out: io.StringIO, message: str, secret: str, kept: str) -> None:
    """Credential-looking patterns in messages are masked to *** and the rest of the line survives."""
    setup_logging("INFO", "text", stream=out)
    logger.info(message)
    text = out.getvalue()
    if secret:
        assert secret not in text
    assert kept in text


def test_redaction_of_extras(out: io.StringIO) -> None:
    """Extras named like secrets are masked whole; other string extras get the message redaction."""
    setup_logging("INFO", "json", stream=out)
    logger.bind(api_key="k1", password="p1", auth_token="t1", webhook_secret="w1", url="mailto://u:pw9@h/x").info("x")
    (record,) = json_lines(out)
    assert record["api_key"] == record["password"] == record["auth_token"] == record["webhook_secret"] == "***"
    assert record["url"] == "mailto://u:***@h/x"


def test_registered_secrets_are_masked_everywhere(out: io.StringIO) -> None:
    """A registered secret is masked in the message, in extras and in exception text."""
    setup_logging("INFO", "json", stream=out)
    register_secret("LIVE_KEY_0123456789")
    logger.bind(detail="key LIVE_KEY_0123456789 rejected").info("calling with LIVE_KEY_0123456789")
    try:
        raise RuntimeError("401 for LIVE_KEY_0123456789")
    except RuntimeError:
        logger.exception("failed")
    assert "LIVE_KEY_0123456789" not in out.getvalue()
    first, second = json_lines(out)
    assert first["msg"] == "calling with ***"
    assert first["detail"] == "key *** rejected"
    assert "RuntimeError: 401 for ***" in str(second["exception"])


def test_register_secret_skips_short_values_and_splits_urls(out: io.StringIO) -> None:
    """Values under 4 characters are not registered; an Apprise URL registers its password and tokens too."""
    setup_logging("INFO", "text", stream=out)
    register_secret("abc")
    register_secret("")
    register_secret("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops")
    register_secret("mailtos://bot:pa55word@smtp.example.com:587?to=ops@example.com")
    logger.info("abc is fine; token TIiajkdnlazkcOXrIdevi7FQ and pa55word leaked separately")
    text = out.getvalue()
    assert "abc is fine" in text
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in text
    assert "pa55word" not in text


def test_stdlib_records_are_redacted(out: io.StringIO) -> None:
    """Redaction also applies to records that come in through stdlib logging."""
    setup_logging("INFO", "text", stream=out)
    register_secret("TEST_fromstdlib")
    logging.getLogger("apprise").warning("failed for %s at json://u:pw@host/x", "TEST_fromstdlib")
    text = out.getvalue()
    assert "TEST_fromstdlib" not in text
    assert ":pw@" not in text


def test_bad_level_or_format_is_rejected() -> None:
    """An unknown level or format raises ValueError instead of silently logging nothing."""
    with pytest.raises(ValueError):
        setup_logging("LOUD")
    with pytest.raises(ValueError, match="format"):
        setup_logging("INFO", "xml")
