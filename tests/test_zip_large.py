"""ZIP64 by size: a member larger than 4 GiB goes in, comes out, and survives rewrites.

About 20 s: 4 GiB of zeros are deflated, read back and tested by ``unzip -t``. The
compressed member is only a few MiB, so the disk barely notices.
"""

from __future__ import annotations

import subprocess
import zipfile

from tests.test_zip_support import UNZIP, WHEN_NS, Chunks, location, read_all, write

BLOCK = bytes(1 << 20)
COUNT = 4 * 1024 + 3  # 4 GiB + 3 MiB: above the 32-bit limit


def test_member_over_4_gib(tmp_path):
    archive = tmp_path / "big.zip"
    loc = location(archive)
    assert loc.prepare().ok
    written = loc.write("huge.bin", Chunks(BLOCK, COUNT), WHEN_NS)
    assert written.ok, written
    assert written.value.size == COUNT << 20 > 0xFFFFFFFF
    write(loc, "small.txt", b"after")  # a rewrite copies the ZIP64 member raw
    assert loc.rename("huge.bin", "moved/huge.bin").ok  # and renames it raw
    with zipfile.ZipFile(archive) as other:
        info = other.getinfo("moved/huge.bin")
        assert info.file_size == COUNT << 20
        assert other.read("small.txt") == b"after"
    fresh = location(archive)
    assert fresh.stat("moved/huge.bin").value == written.value.__class__(
        "moved/huge.bin", False, COUNT << 20, written.value.mtime_ns)
    total = 0
    opened = fresh.open_read("moved/huge.bin")
    assert opened.ok
    with opened.value as stream:  # the stream checks the CRC-32 at its end
        while chunk := stream.read(1 << 20):
            assert chunk == BLOCK[:len(chunk)]
            total += len(chunk)
    assert total == COUNT << 20
    tested = subprocess.run([UNZIP, "-tq", str(archive)], capture_output=True, text=True,
                            check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert read_all(fresh, "small.txt") == b"after"
