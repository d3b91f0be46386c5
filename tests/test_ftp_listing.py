"""What FTP servers say, parsed: MLSD/MLST facts, LIST dialects, time stamps, hostile names."""

from __future__ import annotations

import calendar

import pytest

from filesync.locations.ftp.listing import (
    DIR,
    FILE,
    LINK,
    OTHER,
    Features,
    RemoteItem,
    format_ftp_time,
    name_problem,
    parse_ftp_time,
    parse_list_line,
    parse_mlsd_line,
    parse_mlst_reply,
    whole_seconds,
)
from filesync.locations.ftp.stream import Window

STAMP = calendar.timegm((2024, 11, 22, 2, 25, 58, 0, 0, 0)) * 1_000_000_000


def test_ftp_times_are_utc_and_keep_fractions():
    assert parse_ftp_time("20241122022558") == STAMP
    assert parse_ftp_time("20241122022558.5") == STAMP + 500_000_000
    assert parse_ftp_time("20241122022558.123456789") == STAMP + 123_456_789
    assert format_ftp_time(STAMP + 999_999_999) == "20241122022558"
    assert whole_seconds(STAMP + 999_999_999) == STAMP


@pytest.mark.parametrize("text", ["", "2024112202255", "20241322022558", "2024-11-22",
                                  "20241122022558.", "x0241122022558"])
def test_malformed_times_are_refused(text):
    assert parse_ftp_time(text) is None


def test_mlsd_lines_of_pyftpdlib_and_pure_ftpd():
    pyftpdlib = ("type=file;size=3;perm=awfdrw;modify=20241122022558;unique=801g2; a b.txt")
    assert parse_mlsd_line(pyftpdlib) == RemoteItem("a b.txt", FILE, 3, STAMP)
    pure = ("type=dir;sizd=4096;modify=20241122022558;UNIX.mode=0755;UNIX.uid=65534;"
            "unique=fe00g20c11b; sub dir")
    assert parse_mlsd_line(pure) == RemoteItem("sub dir", DIR)
    assert parse_mlsd_line("type=cdir;modify=20241122022558; .") is None
    assert parse_mlsd_line("type=pdir;modify=20241122022558; ..") is None
    assert parse_mlsd_line("type=OS.unix=slink:/etc;modify=20241122022558; link").kind == LINK
    assert parse_mlsd_line("type=OS.unix=blkdev;size=0; sda").kind == OTHER


def test_mlsd_names_keep_semicolons_and_leading_spaces():
    item = parse_mlsd_line("type=file;size=1;modify=20241122022558;  odd; name ")
    assert item is not None and item.name == " odd; name "


def test_mlsd_file_without_time_has_none():
    item = parse_mlsd_line("type=file;size=5; untimed")
    assert item == RemoteItem("untimed", FILE, 5, None)


def test_mlst_reply_is_read_from_its_fact_line():
    reply = ("250-Begin\n type=file;size=11;modify=20241122022558;UNIX.mode=0644; /a b/f 1.txt\n"
             "250 End.")
    assert parse_mlst_reply(reply) == RemoteItem("/a b/f 1.txt", FILE, 11, STAMP)
    assert parse_mlst_reply("250 End.") is None


def test_unix_list_lines_with_and_without_group():
    now = calendar.timegm((2024, 12, 1, 0, 0, 0, 0, 0, 0))
    line = "-rw-r--r--    1 65534      nogroup             3 Nov 22 02:25 x y é.txt"
    assert parse_list_line(line, now) == RemoteItem(
        "x y é.txt", FILE, 3, calendar.timegm((2024, 11, 22, 2, 25, 0, 0, 0, 0)) * 10**9)
    no_group = "-rw-r--r--   1 1000  1234 Jan 02  2020 numeric"
    item = parse_list_line(no_group, now)
    assert item is not None and item.size == 1234 and item.name == "numeric"
    assert item.mtime_ns == calendar.timegm((2020, 1, 2, 0, 0, 0, 0, 0, 0)) * 10**9
    assert parse_list_line("drwxr-xr-x 2 u g 4096 Nov 22 02:25 sub dir", now) == \
        RemoteItem("sub dir", DIR)
    assert parse_list_line("lrwxrwxrwx 1 u g 7 Nov 22 02:25 ln -> /etc/passwd", now) == \
        RemoteItem("ln", LINK)
    assert parse_list_line("drwxr-xr-x 2 u g 4096 Nov 22 02:25 .", now) is None
    assert parse_list_line("total 12", now) is None


def test_unix_list_time_in_the_future_means_last_year():
    now = calendar.timegm((2024, 1, 10, 0, 0, 0, 0, 0, 0))
    item = parse_list_line("-rw-r--r-- 1 u g 1 Dec 24 10:00 xmas", now)
    assert item is not None
    assert item.mtime_ns == calendar.timegm((2023, 12, 24, 10, 0, 0, 0, 0, 0)) * 10**9


def test_dos_list_lines():
    assert parse_list_line("11-22-24  02:25PM       <DIR>          sub dir") == \
        RemoteItem("sub dir", DIR)
    item = parse_list_line("11-22-2024  02:25AM                 3 a b.txt")
    assert item == RemoteItem("a b.txt", FILE, 3,
                              calendar.timegm((2024, 11, 22, 2, 25, 0, 0, 0, 0)) * 10**9)
    assert parse_list_line("01-02-99  12:05AM  7 old.txt").mtime_ns == \
        calendar.timegm((1999, 1, 2, 0, 5, 0, 0, 0, 0)) * 10**9  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["..", ".", "", "../etc", "a/b", "/etc/passwd", "a\\b",
                                  "line\nbreak", "tab\there"])
def test_names_that_would_leave_the_folder_are_refused(name):
    assert name_problem(name) is not None


@pytest.mark.parametrize("name", ["a.txt", "x y é.txt", "..hidden", "...", "日本語", "a;b"])
def test_ordinary_names_pass(name):
    assert name_problem(name) is None


def test_feat_reply_is_parsed():
    pure = ("211-Extensions supported:\n UTF8\n EPRT\n MDTM\n SIZE\n MFMT\n REST STREAM\n"
            " MLST type*;size*;sizd*;modify*;\n MLSD\n AUTH TLS\n211 End.")
    assert Features.parse(pure) == Features(mlsd=True, mdtm=True, size=True, rest=True,
                                            mfmt=True, utf8=True)
    bare = "211-Features:\n SIZE\n211 End"
    assert Features.parse(bare) == Features(size=True)


def test_resume_window_keeps_only_the_last_bytes():
    window = Window(10)
    for piece in (b"0123", b"4567", b"89ab", b"cdef"):
        window.add(piece)
    assert window.end == 16
    assert window.start == 4  # "0123" was dropped: the rest still covers 10 bytes
    assert window.since(4) == b"456789abcdef"
    assert window.since(9) == b"9abcdef"
    assert window.since(16) == b""
