"""No data lost (issue 16, item 8): a writer of a file never replaces a folder, a writer of a folder never
replaces a file or a folder it did not make, without --force; an output never replaces an input or the
working folder. Every `kdgat` command that writes is tried against each case; bad destinations are one
line on stderr (item 10)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from support.can_logs import LOG, kdgat

from kdgat.io import OUTPUT_MARK, OutputError, atomic_path, check_output, write_json


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "drive.log"
    path.parent.mkdir()
    path.write_text(LOG * 1)
    return path


def precious(path: Path) -> Path:
    """A folder of the user's with something in it."""
    (path / "sub").mkdir(parents=True)
    (path / "sub" / "thesis.tex").write_text("years of work")
    return path


def test_a_file_writer_never_replaces_a_folder(tmp_path: Path) -> None:
    dest = precious(tmp_path / "out")
    with pytest.raises(OutputError, match="is a folder, and this writes a file"):
        write_json({}, dest)
    assert (dest / "sub" / "thesis.tex").read_text() == "years of work"
    write_json({"a": 1}, dest, force=True)  # asked for
    assert dest.is_file()


def test_a_folder_writer_replaces_only_its_own_folders(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    for _ in range(2):  # its own output, twice: replaced
        with atomic_path(dest, folder=True) as tmp:
            tmp.mkdir()
            (tmp / "x").write_text("1")
        assert (dest / OUTPUT_MARK).exists()
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", folder=True)  # an empty folder loses nothing
    with pytest.raises(OutputError, match="a folder that kdgat did not write"):
        check_output(precious(tmp_path / "mine"), folder=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file, and this writes a folder"):
        check_output(tmp_path / "f", folder=True)
    check_output(tmp_path / "mine", folder=True, force=True)


def test_never_an_input_or_the_working_folder(tmp_path: Path, log: Path) -> None:
    for dest in (log, log.parent, tmp_path):
        with pytest.raises(OutputError, match="input"):
            check_output(dest, inputs=[log], force=True)
    with pytest.raises(OutputError, match="working folder"):
        check_output(Path("."), force=True)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output(log / "x.parquet")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_no_write_permission_is_one_line(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="no permission to write in"):
        check_output(ro / "x.json")


def _one_line_error(r: object, *needles: str) -> None:
    assert r.returncode == 2, r.stderr  # type: ignore[attr-defined]
    err = r.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_ingest_keeps_folders_inputs_and_working_folder(tmp_path: Path, log: Path) -> None:
    folder = precious(tmp_path / "results")
    _one_line_error(kdgat("ingest", log, "-o", folder), "is a folder")
    _one_line_error(kdgat("ingest", log, "-o", tmp_path / "f.parquet", "--report", folder), "is a folder")
    assert (folder / "sub" / "thesis.tex").exists()
    _one_line_error(kdgat("ingest", log, "-o", log), "is an input")
    _one_line_error(kdgat("ingest", log.parent, "-o", log.parent), "is an input")
    _one_line_error(kdgat("ingest", log, "-o", ".", cwd=tmp_path), "working folder")
    _one_line_error(kdgat("ingest", log, "-o", log / "x.parquet"), "is a file, not a folder")
    assert log.read_text() == LOG
    ok = kdgat("ingest", log, "-o", tmp_path / "f.parquet", "--report", tmp_path / "r.json")
    assert ok.returncode == 0, ok.stderr
    again = kdgat("ingest", log, "-o", tmp_path / "f.parquet")  # a file replaces a file
    assert again.returncode == 0, again.stderr


def test_synth_graphs_inject_keep_foreign_folders(tmp_path: Path, log: Path) -> None:
    folder = precious(tmp_path / "results")
    _one_line_error(kdgat("synth", folder, "--minutes", "0.05"), "did not write")
    assert kdgat("synth", tmp_path / "raw", "--minutes", "0.05").returncode == 0
    assert kdgat("synth", tmp_path / "raw", "--minutes", "0.05").returncode == 0  # its own: replaced
    _one_line_error(kdgat("synth", log, "--minutes", "0.05"), "is a file")
    assert kdgat("ingest", tmp_path / "raw", "-o", tmp_path / "f.parquet").returncode == 0
    _one_line_error(kdgat("graphs", tmp_path / "f.parquet", "-o", folder), "did not write")
    _one_line_error(kdgat("graphs", tmp_path / "f.parquet", "-o", tmp_path / "f.parquet"), "is an input")
    _one_line_error(kdgat("inject", log.parent, folder), "did not write")
    _one_line_error(kdgat("inject", log.parent, log.parent), "is an input")
    assert (folder / "sub" / "thesis.tex").exists() and log.exists()


def test_an_unreadable_capture_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16, item 10: a file the user cannot read, inside a dataset folder, names itself (root reads
    every file, so the permission error is made here)."""
    import kdgat.data.formats_core as core
    from kdgat.data.formats import FrameError, read_dataset

    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "a.log").write_text(LOG)
    (tmp_path / "ds" / "b.log").write_text(LOG)

    def guarded_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == "b.log":
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(core, "open", guarded_open, raising=False)
    with pytest.raises(FrameError, match=r"ds/b\.log: cannot read: Permission denied$"):
        read_dataset(tmp_path / "ds")


def test_paper_bundle_keeps_files_and_folders(tmp_path: Path) -> None:
    """`kdgat paper bundle --out` naming a file, or a folder where a page goes, is one line (exit 2)
    before Node.js is looked for, and leaves both as they were."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    _one_line_error(kdgat("paper", "bundle", "--out", notes), str(notes), "is a file, not a folder")
    assert notes.read_text() == "mine"
    page = precious(tmp_path / "html" / "kd-transfer.html")
    _one_line_error(kdgat("paper", "bundle", "--out", page.parent), str(page), "is a folder")
    assert (page / "sub" / "thesis.tex").exists()


def test_no_output_inside_an_input_folder_without_force(tmp_path: Path, log: Path) -> None:
    """An output inside the folder a command reads lands among the user's captures (inject once wrote 66
    CSVs into a dataset): one line, exit 2, nothing written; --force writes it. Links are followed."""
    inside = log.parent / "sub" / "f.parquet"
    _one_line_error(kdgat("ingest", log.parent, "-o", inside), f"{inside}: is inside the input folder")
    report = log.parent / "r.json"
    _one_line_error(kdgat("ingest", log.parent, "-o", tmp_path / "f.parquet", "--report", report), "inside")
    (tmp_path / "link").symlink_to(log.parent)
    _one_line_error(kdgat("ingest", tmp_path / "link", "-o", inside), "is inside the input folder")
    _one_line_error(kdgat("inject", log.parent, log.parent / "sub"), "is inside the input folder")
    assert sorted(p.name for p in log.parent.iterdir()) == ["drive.log"]
    ok = kdgat("ingest", log.parent, "-o", inside, "--force")
    assert ok.returncode == 0 and inside.is_file(), ok.stderr
    ok = kdgat("ingest", log, "-o", log.parent / "beside.parquet")  # a file's folder is not an input
    assert ok.returncode == 0, ok.stderr
