"""Every bad input of issue 2, section 6, through the command line.

Each must give exit status 2 and exactly one line ``obscale-bayes: error: ...`` on stderr that
names the file, line and/or column, with no traceback and no output file.  Bad tables and specs
must be rejected before any sampling starts (the sampler is replaced by a tripwire).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from obscale_bayes.cli.main import main
from obscale_bayes.fit.fitted import CapabilityModel

HEAD = "model,family,flops_1e21,mmlu,hellaswag,gsm8k\n"
ROWS = [
    "a/1,Fam,10,0.40,0.60,0.05",
    "a/2,Fam,100,0.55,0.75,0.20",
    "b/1,Other,50,0.45,0.70,0.10",
]


def table(*rows: str, head: str = HEAD) -> str:
    return head + "".join(r + "\n" for r in rows)


@pytest.fixture(autouse=True)
def no_sampling(monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError("sampling started on bad input")

    monkeypatch.setattr(CapabilityModel, "fit", tripwire)


def fails(capsys, argv: list, *expected: str) -> str:
    """Run ``main(argv)``; check exit 2, one stderr line containing ``expected``, no traceback."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("obscale-bayes: error: "), line
    assert "Traceback" not in err + out
    assert out == ""
    for part in expected:
        assert part in line, f"{part!r} not in {line!r}"
    return line


def only(folder: Path, *names: str) -> None:
    """``folder`` holds exactly ``names``: no output file, no temporary file left behind."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


# ---------------------------------------------------------------------------- bad tables
BAD_TABLES = {
    "percent": (
        table("a/1,Fam,10,40.0,0.60,0.05", "a/2,Fam,100,55.0,0.75,0.20", ROWS[2]),
        ["line 3", "column 'mmlu'", "percent", "divide the column by 100"],
    ),
    "outside_range": (
        table(ROWS[0], "a/2,Fam,100,0.55,-0.20,0.20", ROWS[2]),
        ["line 3", "column 'hellaswag'", "outside its metric range"],
    ),
    "non_numeric": (
        table(ROWS[0], "a/2,Fam,100,0.55,abc,0.20", ROWS[2]),
        ["line 3", "column 'hellaswag'", "'abc' is not a number"],
    ),
    "duplicate_model": (
        table(*ROWS, "a/1,Fam,10,0.41,0.61,0.06"),
        ["line 5", "column 'model'", "'a/1' already on line 2"],
    ),
    "zero_flops": (
        table(ROWS[0], "a/2,Fam,0,0.55,0.75,0.20", ROWS[2]),
        ["line 3", "column 'flops_1e21'", "must be positive"],
    ),
    "negative_flops": (
        table(ROWS[0], "a/2,Fam,-84,0.55,0.75,0.20", ROWS[2]),
        ["line 3", "column 'flops_1e21'", "must be positive"],
    ),
    "no_family": (
        table(ROWS[0], "a/2,,100,0.55,0.75,0.20", ROWS[2]),
        ["line 3", "column 'family'", "'a/2' has no family"],
    ),
    "empty_file": ("", ["empty"]),
    "no_model_column": (
        table("Fam,10,0.4,0.6,0.05", head="family,flops_1e21,mmlu,hellaswag,gsm8k\n"),
        ["line 1", "no 'model' column"],
    ),
    "unknown_benchmark_wide": (
        table(
            "a/1,Fam,10,0.4,0.6,0.5", head="model,family,flops_1e21,mmlu,hellaswag,mystery_bench\n"
        ),
        ["line 1", "column 'mystery_bench'", "unknown benchmark"],
    ),
    "unknown_benchmark_long": (
        table(
            "a/1,Fam,10,mmlu,0.4",
            "a/1,Fam,10,mystery_bench,0.5",
            head="model,family,flops_1e21,benchmark,value\n",
        ),
        ["line 3", "mystery_bench", "not in the metadata", "floor"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_table_given_to_fit(case, tmp_path, capsys):
    text, expected = BAD_TABLES[case]
    (tmp_path / "bad.csv").write_text(text, encoding="utf-8")
    out = tmp_path / "fit.nc"
    line = fails(capsys, ["fit", "--data", tmp_path / "bad.csv", "--out", out], *expected)
    assert str(tmp_path / "bad.csv") in line
    only(tmp_path, "bad.csv")


def test_bad_table_among_several_names_its_file(tmp_path, capsys):
    (tmp_path / "good.csv").write_text(table(*ROWS), encoding="utf-8")
    (tmp_path / "bad.csv").write_text(BAD_TABLES["non_numeric"][0], encoding="utf-8")
    line = fails(
        capsys,
        [
            "fit",
            "--data",
            tmp_path / "good.csv",
            "--data",
            tmp_path / "bad.csv",
            "--out",
            tmp_path / "f.nc",
        ],
        "bad.csv",
        "line 3",
    )
    assert "good.csv" not in line
    only(tmp_path, "good.csv", "bad.csv")


def test_missing_data_file(tmp_path, capsys):
    fails(
        capsys,
        ["fit", "--data", tmp_path / "nope.csv", "--out", tmp_path / "f.nc"],
        "nope.csv",
        "not found",
    )
    only(tmp_path)


@pytest.mark.parametrize("case", ["percent", "non_numeric", "empty_file", "no_model_column"])
def test_bad_table_given_to_forecast_models(case, tmp_path, capsys, mock_fit):
    # the new models are read with the fit's stored metadata (issue 9), so the fit must exist
    text, expected = BAD_TABLES[case]
    (tmp_path / "new.csv").write_text(text, encoding="utf-8")
    mock_fit.save(tmp_path / "fit.nc")
    png = tmp_path / "plot.png"
    line = fails(
        capsys,
        ["forecast", tmp_path / "fit.nc", "--models", tmp_path / "new.csv", "--plot", png],
        *expected,
    )
    assert "new.csv" in line
    only(tmp_path, "new.csv", "fit.nc")


# ---------------------------------------------------------------------------- bad specs
BAD_SPECS = {
    "unknown_top_key": ('name = "x"\ncolour = "blue"\n', ["colour", "unknown"]),
    "unknown_structure_key": ("[structure]\nn_factor = 2\n", ["n_factor", "[structure]"]),
    "unknown_prior": ('[priors]\nmisfitt = { dist = "halfnormal", sigma = 0.1 }\n', ["misfitt"]),
    "negative_sigma": (
        '[priors]\nmisfit = { dist = "halfnormal", sigma = -1 }\n',
        ["misfit", "sigma", "> 0"],
    ),
    "unknown_dist": (
        '[priors]\nloading = { dist = "cauchy", mu = 0, sigma = 1 }\n',
        ["loading", "cauchy"],
    ),
    "not_toml": ("[structure\nn_factors = 2\n", ["not valid TOML"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec(case, tmp_path, capsys):
    text, expected = BAD_SPECS[case]
    (tmp_path / "spec.toml").write_text(text, encoding="utf-8")
    (tmp_path / "t.csv").write_text(table(*ROWS), encoding="utf-8")
    line = fails(
        capsys,
        [
            "fit",
            "--spec",
            tmp_path / "spec.toml",
            "--data",
            tmp_path / "t.csv",
            "--out",
            tmp_path / "f.nc",
        ],
        *expected,
    )
    assert "spec.toml" in line
    only(tmp_path, "spec.toml", "t.csv")


def test_unknown_spec_variant(tmp_path, capsys):
    fails(
        capsys,
        ["fit", "--spec", "no_such_variant", "--out", tmp_path / "f.nc"],
        "no_such_variant",
        "available",
    )
    only(tmp_path)


# ---------------------------------------------------------------------------- bad fit files
def _non_fit(p: Path) -> None:
    import xarray as xr

    xr.Dataset({"v": ("x", [1.0, 2.0])}).to_netcdf(p, engine="h5netcdf")


def _empty_netcdf(p: Path) -> None:
    import xarray as xr

    xr.Dataset().to_netcdf(p)


BAD_FITS = {
    "missing": (None, ["no such fit file"]),
    "corrupt": (lambda p: p.write_bytes(os.urandom(4096)), ["not a readable NetCDF fit file"]),
    "text": (lambda p: p.write_text("hello\n"), ["not a readable NetCDF fit file"]),
    "non_fit": (_non_fit, ["not an obscale-bayes fit"]),
    "empty_netcdf": (_empty_netcdf, ["fit"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FITS))
@pytest.mark.parametrize("command", ["check", "forecast"])
def test_bad_fit_file(command, case, tmp_path, capsys):
    make, expected = BAD_FITS[case]
    p = tmp_path / "fit.nc"
    if make is not None:
        make(p)
    argv = [command, p]
    if command == "forecast":
        argv += ["--family", "Llama-2", "--flops", "1e24", "--plot", tmp_path / "plot.png"]
    line = fails(capsys, argv, str(p), *expected)
    assert "refit" in line or "create one" in line
    only(tmp_path, *(["fit.nc"] if make is not None else []))


def test_fit_file_is_a_directory(tmp_path, capsys):
    fails(capsys, ["check", tmp_path], str(tmp_path), "directory")


# ---------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "args, expected",
    [
        (["--family", "Llama-2", "--flops", "abc"], ["--flops", "'abc' is not a number"]),
        (["--family", "Llama-2", "--flops", "-5"], ["--flops", "positive", "-5"]),
        (["--family", "Llama-2", "--flops=-5"], ["--flops", "positive"]),
        (["--family", "Llama-2", "--flops", "0"], ["--flops", "positive"]),
        (["--family", "Llama-2", "--flops", "inf"], ["--flops", "positive"]),
        (["--family", "Llama-2", "--flops", "84"], ["--flops", "too small", "1e21"]),
        (
            ["--family", "Llama-2", "--flops", "1e24", "--ci", "1.5"],
            ["--ci", "between 0 and 1", "1.5"],
        ),
        (["--family", "Llama-2", "--flops", "1e24", "--ci", "0"], ["--ci", "between 0 and 1"]),
        (["--family", "Llama-2", "--flops", "1e24", "--ci", "1"], ["--ci", "between 0 and 1"]),
        (["--family", "Llama-2", "--flops", "1e24", "--ci", "ninety"], ["--ci", "not a number"]),
        (
            ["--family", "Llama-2", "--family", "Pythia", "--flops", "1e24"],
            ["pairs", "2 --family", "1 --flops"],
        ),
        (["--flops", "1e24"], ["pairs"]),
        ([], ["nothing to forecast"]),
        (["--family", "Llama-2", "--flops", "1e24", "--plot", "out.gif"], ["--plot", ".gif"]),
        (["--family", "Llama-2", "--flops", "1e24", "--seed", "-1"], ["--seed"]),
    ],
)
def test_bad_forecast_arguments(args, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fit.nc").write_bytes(b"")  # never read: arguments are checked first
    fails(capsys, ["forecast", "fit.nc", *args], *expected)
    only(tmp_path, "fit.nc")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--draws", "0"], ["--draws", "positive"]),
        (["--chains", "two"], ["--chains", "'two'"]),
        (["--sampler", "gibbs"], ["--sampler", "gibbs"]),
        ([], []),  # --out is the only thing given below; --out pointing to a directory
    ],
)
def test_bad_fit_arguments(args, expected, tmp_path, capsys):
    out = tmp_path / "f.nc" if args else tmp_path
    line = fails(capsys, ["fit", "--out", out, *args], *expected)
    if not args:
        assert "directory" in line
    only(tmp_path)


def test_out_below_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    fails(capsys, ["fit", "--out", tmp_path / "file" / "f.nc"], "--out", "not a directory")


def test_usage_errors_are_one_line(capsys):
    fails(capsys, [], "COMMAND", "--help")
    fails(capsys, ["frobnicate"], "invalid choice")
    fails(capsys, ["fit"], "--out")
    fails(capsys, ["check"], "PATH")


# ---------------------------------------------------------------------------- a real process
@pytest.mark.parametrize(
    "make, argv, expected",
    [
        (
            lambda d: (d / "bad.csv").write_text(BAD_TABLES["percent"][0]),
            ["fit", "--data", "bad.csv", "--out", "fit.nc"],
            "bad.csv: line 3, column 'mmlu'",
        ),
        (
            lambda d: (d / "fit.nc").write_bytes(os.urandom(2048)),
            ["forecast", "fit.nc", "--family", "X", "--flops", "1e24", "--plot", "p.png"],
            "fit.nc: not a readable NetCDF fit file",
        ),
    ],
)
def test_subprocess_exit_status_and_stderr(make, argv, expected, tmp_path):
    make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = subprocess.run(
        [sys.executable, "-m", "obscale_bayes.cli", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("obscale-bayes: error: "), r.stderr
    assert expected in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
