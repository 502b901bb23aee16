"""Running the `adl` command line in-process and checking its one-line errors (shared by the test files)."""

from __future__ import annotations

from pathlib import Path

from adl.cli import main


def run_cli(capsys, argv) -> tuple[int, str, str]:
    """Run ``adl -q ...``; argparse usage errors (SystemExit) count as their exit code."""
    capsys.readouterr()
    try:
        code = main(["-q", *map(str, argv)])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error(capsys, argv, *names, code: int = 1) -> str:
    """Exit ``code`` and exactly one ``adl ... error`` line on stderr that contains every one of ``names``.

    Other stderr lines may only be logged warnings (still shown under ``-q``): no second error, nothing
    indented (a traceback's frames or a message spilling over several lines).
    """
    got, _, err = run_cli(capsys, argv)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("adl ") and "error" in line]
    assert len(errors) == 1, err
    others = [line for line in err.splitlines() if line and line not in errors]
    assert not any(line[0].isspace() or "error:" in line.lower() for line in others), err
    assert got == code, err
    for name in names:
        assert str(name) in errors[0], f"{name!r} not named in: {errors[0]}"
    return errors[0]


def leftovers(folder: Path) -> list[Path]:
    """adl's hidden temporaries (``.name.*.part*``) anywhere under ``folder``."""
    return sorted(p for p in Path(folder).rglob(".*") if ".part" in p.name)
