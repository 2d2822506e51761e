"""The demo orchestration (``make demo``): its step runner, without running the (long) steps."""

from __future__ import annotations

import sys

import pytest

from diagnostics.data.errors import InputError
from emulator.cli import demo


def _step(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_parallel_steps_all_run_and_their_output_is_printed_in_blocks(capsys, tmp_path):
    marks = [tmp_path / f"done{i}" for i in range(3)]
    cmds = [_step(f"import pathlib, sys; pathlib.Path({str(m)!r}).write_text('x'); print('step {i} ran');"
                  " sys.argv") for i, m in enumerate(marks)]
    log: list[dict] = []
    demo._run_parallel(cmds, 2, log)
    out = capsys.readouterr().out
    assert all(m.exists() for m in marks)
    assert all(f"step {i} ran" in out for i in range(3))
    assert len(log) == 3 and all(entry["seconds"] >= 0 for entry in log)
    assert out.count("--no-progress") == 3  # concurrent steps never draw interleaved bars


def test_a_failing_parallel_step_stops_the_demo_after_the_others_end(tmp_path):
    mark = tmp_path / "other"
    cmds = [_step("import sys; sys.exit(3)"),
            _step(f"import pathlib, time; time.sleep(0.5); pathlib.Path({str(mark)!r}).write_text('x')")]
    with pytest.raises(InputError, match="exit code 3"):
        demo._run_parallel(cmds, 2, [])
    assert mark.exists()


def test_rollouts_run_together_on_a_multicore_cpu_and_one_at_a_time_on_a_gpu(monkeypatch):
    args = demo._parser().parse_args(["--device", "cpu"])
    monkeypatch.setattr(demo.os, "cpu_count", lambda: 2)
    assert demo._parallel_jobs(args) == len(demo.EXPERIMENTS)
    monkeypatch.setattr(demo.os, "cpu_count", lambda: 1)
    assert demo._parallel_jobs(args) == 1
    assert demo._parallel_jobs(demo._parser().parse_args(["--device", "cuda"])) == 1
    assert demo._parallel_jobs(demo._parser().parse_args(["--jobs", "1"])) == 1


def test_errors_name_the_command_and_debug_does_not_leak(capsys, monkeypatch):
    """``python -m emulator.cli.demo`` has a file path as argv[0]: messages say ``make demo``.
    ``--debug`` re-raises; nothing of it is left in the environment of later commands."""
    import os

    from diagnostics.data.errors import cli_entry

    def bad(argv):
        raise InputError("no such thing", "/x")

    main = cli_entry(bad, prog="make demo")
    before = dict(os.environ)
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("make demo: error: /x: no such thing")
    with pytest.raises(InputError):
        main(["--debug"])
    assert dict(os.environ) == before
