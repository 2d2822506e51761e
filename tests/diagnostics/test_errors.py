"""The command wrapper: bad input and operating-system errors are one line and exit 2."""

from __future__ import annotations

import errno
import os

import pytest

from diagnostics.data.errors import InputError, cli_entry, ensure_output_dir, os_error_message


def _failing(exc: BaseException):
    def main(argv):
        raise exc
    return main


@pytest.mark.parametrize("exc, expected", [
    (OSError(errno.ENOSPC, "No space left on device", "out/tas.nc"), "x: error: out/tas.nc: no space left on device"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "file/sub"), "x: error: file/sub: not a directory"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "x: error: /root/x: permission denied"),
    (InputError("holds NaN", "a.nc"), "x: error: a.nc: holds NaN"),
])
def test_errors_are_one_line_and_exit_2(exc, expected, capsys):
    assert cli_entry(_failing(exc), prog="x")([]) == 2
    err = capsys.readouterr().err
    assert err.strip() == expected and err.count("\n") == 1


def test_debug_re_raises_os_errors():
    with pytest.raises(OSError):
        cli_entry(_failing(OSError(errno.ENOSPC, "No space left on device", "f")), prog="x")(["--debug"])


def test_os_error_without_a_path_still_reads():
    assert os_error_message(OSError("boom")) == "OSError: boom"
    assert os_error_message(OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")) == \
        "a -> b: invalid cross-device link"


def test_output_dir_is_checked_before_the_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="lies under a file"):
        ensure_output_dir(tmp_path / "file" / "sub")
    with pytest.raises(InputError, match="is a file"):
        ensure_output_dir(tmp_path / "file")
    assert ensure_output_dir(tmp_path / "new" / "dir").is_dir()
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(InputError, match="not writable"):
            ensure_output_dir(ro)
