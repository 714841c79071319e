"""Every supported CAN log format → the canonical frame table (kdgat.data.frames).

    frames, report = read_any("data/raw/set_01")            # a dataset folder or a single capture
    frames, report = read_capture("gas-pedal.log", fmt="candump", on_bad_line="skip")

Formats: candump logs; asc, blf, trc and python-can's csv (read by python-can); the HCRL Car-Hacking
CSV and its normal_run_data.txt layout; the can-train-and-test CSV. "auto" detects the format from the
BLF signature, the first non-blank line, and the extension.

Bad input: with on_bad_line="error" the first bad line raises FrameError naming file and physical
line; with "skip" bad lines are dropped and counted in the IngestReport. Timestamps must not go
backwards within a file (skip mode drops, of two frames out of order, the one out of order with more of
its neighbours: formats_order). Remote and error
frames carry no payload: they are dropped in both modes and counted as non_data. A file with no
frame left, an empty file, or a file whose header or format cannot be read is an error in both modes.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from tqdm import tqdm

from kdgat.data.format_names import FORMATS as FORMAT_SHAPES
from kdgat.data.formats_core import (
    CANDIDATE_SCHEMA,
    COMPRESSED,
    MAX_EXAMPLES,
    FileCounts,
    Finisher,
    candidates,
    finish,
    inner_suffix,
    line_blocks,
    read_bytes,
)
from kdgat.data.formats_pycan import CANLOG_CSV_HEADER, read_blf, read_pycan_text
from kdgat.data.formats_text import (
    CANTT_HEADER,
    SCREEN_LINE,
    candump_candidates,
    hcrl_candidates,
    hcrl_txt_candidates,
    is_screen,
    read_candump,
    read_cantt_fast,
    read_cantt_lines,
    read_hcrl,
    read_hcrl_txt,
)
from kdgat.data.frames import BENIGN, FrameError, conform
from kdgat.data.layout import attack_of_filename, attack_of_folder, unplaced

__all__ = [
    "FORMATS",
    "FrameError",
    "IngestReport",
    "capture_files",
    "detect_format",
    "read_any",
    "read_capture",
    "read_capture_blocks",
    "read_dataset",
]

FORMATS = tuple(FORMAT_SHAPES)
ON_BAD_LINE = ("error", "skip")
BY_LINE = ("candump", "hcrl", "hcrl_txt")  # formats whose lines parse alone (read_capture_blocks)
BLOCK_BYTES = 1 << 22  # of a file, per part in read_capture_blocks
CAPTURE_SUFFIXES = (".log", ".csv", ".txt", ".asc", ".blf", ".trc")
_DOC_STEMS = ("readme", "license", "licence", "notice", "changelog", "citation")
_SNIFF = [  # first non-blank line → format, tried in order
    ("candump", re.compile(r"^\(\s*[0-9.]+\)\s+\S+\s+[^#\s]*#")),
    ("candump", re.compile(SCREEN_LINE)),  # candump's screen output (read by the same reader)
    ("hcrl_txt", re.compile(r"^Timestamp:\s*[0-9.]+\s+ID:")),
    ("hcrl", re.compile(r"^[0-9]+(\.[0-9]+)?,[0-9A-Fa-f]+,[0-9],")),
    ("asc", re.compile(r"^(date\s|base\s+(hex|dec)|//|begin\s+triggerblock)", re.IGNORECASE)),
    ("trc", re.compile(r"^;")),
]
_BY_SUFFIX = {".asc": "asc", ".trc": "trc", ".blf": "blf"}


@dataclass
class IngestReport:
    """What an ingest read: counts for the stage's JSON report."""

    files: int = 0
    frames: int = 0
    bad_lines: int = 0  # dropped in skip mode (out_of_order included)
    out_of_order: int = 0  # frames dropped because their timestamp went backwards
    non_data: int = 0  # remote and error frames, which carry no payload
    bad_examples: list[str] = field(default_factory=list)  # first few "file:line: reason"
    files_by_format: dict[str, int] = field(default_factory=dict)
    frames_by_format: dict[str, int] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # files in a dataset folder that are not captures

    def add(self, fmt: str, counts: FileCounts) -> None:
        self.files += 1
        self.frames += counts.frames
        self.bad_lines += counts.bad_lines
        self.out_of_order += counts.out_of_order
        self.non_data += counts.non_data
        self.bad_examples = (self.bad_examples + counts.bad_examples)[:MAX_EXAMPLES]
        self.files_by_format[fmt] = self.files_by_format.get(fmt, 0) + 1
        self.frames_by_format[fmt] = self.frames_by_format.get(fmt, 0) + counts.frames

    def merge(self, other: IngestReport) -> None:
        for name in ("files", "frames", "bad_lines", "out_of_order", "non_data"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.bad_examples = (self.bad_examples + other.bad_examples)[:MAX_EXAMPLES]
        self.ignored = self.ignored + other.ignored
        for mine, theirs in (
            (self.files_by_format, other.files_by_format),
            (self.frames_by_format, other.frames_by_format),
        ):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_format(path: str | Path) -> str:
    """The format of a capture: BLF by its signature, text formats by their first non-blank line, then
    by extension (asc, trc). Raises FrameError for missing, empty, binary or unrecognised files."""
    path = Path(path)
    if not path.is_file():
        raise FrameError(path, "no such file")
    head = read_bytes(path, 1 << 16)
    if not head:
        raise FrameError(path, "empty file")
    suffix = inner_suffix(path)
    if head[:4] == b"LOGG":
        if suffix != path.suffix.lower():  # python-can reads BLF from a file only
            raise FrameError(path, "a compressed BLF file: decompress it (BLF compresses its data already)")
        return "blf"
    if suffix == ".blf":
        raise FrameError(path, "has the .blf extension but no BLF signature ('LOGG')")
    if b"\0" in head:
        raise FrameError(path, "binary data of unknown format (neither a text CAN log nor BLF)")
    first = next((s.strip() for s in head.decode("utf-8-sig", "replace").splitlines() if s.strip()), None)
    if first is None:
        raise FrameError(path, "empty file (only blank lines)")
    header = first.lower()
    if header == CANTT_HEADER:
        return "cantt"
    if header == CANLOG_CSV_HEADER:
        return "canlog_csv"
    for fmt, pattern in _SNIFF:
        if pattern.match(first):
            return fmt
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    raise FrameError(
        path, f"unknown log format (first line: {first[:80]!r}); pass one of {', '.join(FORMATS)}"
    )


def read_capture(
    path: str | Path,
    fmt: str = "auto",
    on_bad_line: str = "error",
    source: str | None = None,
    attack_from: str = "filename",
) -> tuple[pl.DataFrame, IngestReport]:
    """One capture file → (canonical frame table, report). ``source`` defaults to the file name; the type
    of its attack frames comes from the file name or (``attack_from`` "folder") the folder holding it."""
    path = Path(path)
    _check_options(fmt, on_bad_line)
    if not path.is_file():
        raise FrameError(path, "no such file")
    fmt = detect_format(path) if fmt == "auto" else fmt
    counts = FileCounts()
    source = source or path.name
    kind = attack_of_folder(source) if attack_from == "folder" else attack_of_filename(path.name)
    frames = _read(path, fmt, on_bad_line, counts, source, kind if kind != BENIGN else "unknown")
    report = IngestReport()
    report.add(fmt, counts)
    return frames, report


def read_capture_blocks(
    path: str | Path,
    fmt: str = "auto",
    on_bad_line: str = "error",
    block_bytes: int = BLOCK_BYTES,
    source: str | None = None,
    attack_from: str = "filename",
) -> Iterator[tuple[pl.DataFrame, IngestReport]]:
    """``read_capture`` a part at a time, for a reader whose memory must not grow with the file: (frames,
    report of that part) for about ``block_bytes`` of the file each, whose concatenation is
    ``read_capture``'s table and whose reports add up to its report (the first few bad-line examples
    aside, which come in file order). The line-oriented formats (BY_LINE) are read, parsed and checked a
    block of lines at a time by the same code; the others are read whole, as one part."""
    path = Path(path)
    _check_options(fmt, on_bad_line)
    if not path.is_file():
        raise FrameError(path, "no such file")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in BY_LINE:
        yield read_capture(path, fmt, on_bad_line, source, attack_from)
        return
    source = source or path.name
    kind = attack_of_folder(source) if attack_from == "folder" else attack_of_filename(path.name)
    attack = kind if kind != BENIGN else "unknown"
    counts = FileCounts()
    checks = Finisher(path, on_bad_line, counts, source)
    blocks = line_blocks(path, fmt, block_bytes)
    for i, lines in enumerate(blocks):
        if fmt == "candump" and i == 0 and is_screen(lines):  # its -td times are summed over the file
            blocks.close()
            yield read_capture(path, fmt, on_bad_line, source, attack_from)
            return
        before = dataclasses.replace(counts, bad_examples=list(counts.bad_examples))
        if fmt == "candump":
            cand = candump_candidates(lines)
        elif fmt == "hcrl":
            cand = hcrl_candidates(lines, attack, first=i == 0)
        else:
            cand = hcrl_txt_candidates(lines)
        frames = checks.push(cand)
        yield frames, _part_report(fmt, counts, before, first=i == 0)
    before = dataclasses.replace(counts, bad_examples=list(counts.bad_examples))
    frames = checks.push(candidates(pl.DataFrame(schema=CANDIDATE_SCHEMA)), last=True)
    checks.close()
    yield frames, _part_report(fmt, counts, before, first=False)


def _part_report(fmt: str, now: FileCounts, before: FileCounts, first: bool) -> IngestReport:
    """The report of one part of a file: what ``now`` counted since ``before``; the file counts in the
    ``first`` part only."""
    part = FileCounts(
        frames=now.frames - before.frames,
        bad_lines=now.bad_lines - before.bad_lines,
        out_of_order=now.out_of_order - before.out_of_order,
        non_data=now.non_data - before.non_data,
        bad_examples=now.bad_examples[len(before.bad_examples) :],
    )
    report = IngestReport()
    report.add(fmt, part)
    if not first:
        report.files = 0
        del report.files_by_format[fmt]
    return report


def read_dataset(
    root: str | Path,
    fmt: str = "auto",
    on_bad_line: str = "error",
    progress: bool | None = None,
    attack_from: str = "filename",
) -> tuple[pl.DataFrame, IngestReport]:
    """Every capture under a dataset folder (can-train-and-test layout, HCRL files, candump logs...),
    concatenated with ``source`` = path relative to ``root``, sorted by (source, timestamp). Captures no
    layout rule places (layout.LAYOUT_RULES) are an error; files that are not captures are listed in the
    report's ``ignored``.

    progress: show a tqdm bar over files (None: only on a terminal)."""
    root = Path(root)
    _check_options(fmt, on_bad_line)
    files, ignored = scan_dataset(root)
    stray = unplaced([f.relative_to(root).as_posix() for f in files])
    if stray:
        raise FrameError(
            root,
            f"{len(stray)} capture(s) outside the layout folders, e.g. {stray[0]!r}: move them under "
            "train_*/ or test_0N_*/ (`kdgat datasets --help`)",
        )
    if not files:
        raise FrameError(
            root,
            f"no capture files ({' '.join(CAPTURE_SUFFIXES)}, also {'/'.join(COMPRESSED)}) in this folder",
        )
    parts, report = [], IngestReport(ignored=[f.relative_to(root).as_posix() for f in ignored])
    bar = tqdm(
        files, desc=f"ingest {root.name}", unit="file", disable=None if progress is None else not progress
    )
    for f in bar:
        df, rep = read_capture(f, fmt, on_bad_line, f.relative_to(root).as_posix(), attack_from)
        parts.append(df)
        report.merge(rep)
    # Files are in source order and each is sorted by time, so the concatenation is already sorted.
    return conform(pl.concat(parts, how="vertical")), report


def read_any(
    path: str | Path, fmt: str = "auto", on_bad_line: str = "error", attack_from: str = "filename"
) -> tuple[pl.DataFrame, IngestReport]:
    """A file → read_capture; a folder → read_dataset."""
    path = Path(path)
    if path.is_dir():
        return read_dataset(path, fmt, on_bad_line, attack_from=attack_from)
    if path.is_file():
        return read_capture(path, fmt, on_bad_line, attack_from=attack_from)
    raise FrameError(path, "no such file or folder")


def capture_files(root: str | Path) -> list[Path]:
    """Capture files under ``root`` (any depth), by relative path; hidden entries and docs left out.
    A capture compressed as .gz, .xz or .zst counts by its own extension ('a.log.gz' is a .log)."""
    return scan_dataset(root)[0]


def scan_dataset(root: str | Path) -> tuple[list[Path], list[Path]]:
    """(capture files, other files) under ``root``, by relative path; hidden entries, docs and the
    manifest a generator writes are neither."""
    root = Path(root)
    if not root.is_dir():
        raise FrameError(root, "not a folder")
    found: tuple[list[Path], list[Path]] = ([], [])
    for p in _files_under(root):
        rel = p.relative_to(root)
        if p.stem.lower().startswith(_DOC_STEMS) or rel.as_posix() == "manifest.json":
            continue
        found[inner_suffix(p) not in CAPTURE_SUFFIXES].append(p)
    return tuple(sorted(ps, key=lambda p: p.relative_to(root).as_posix()) for ps in found)  # type: ignore[return-value]


def _files_under(root: Path) -> Iterator[Path]:
    """The files under ``root`` (any depth, hidden entries left out), through links to folders too:
    Path.rglob does not follow them, and a linked test folder was once dropped whole without a word.
    Each real folder is read once, so a link back up the tree or a second link to a folder (which would
    read its captures twice, maybe as training and as test) is an error naming the link; so is a link to
    nothing, which is a capture the user meant to be there."""
    seen, stack = {root.resolve(): root}, [root]  # real folder → the path it was first reached by
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError as err:
            raise FrameError(folder, f"cannot read: {err.strerror or err}") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():  # follows a link
                real = entry.resolve()
                if real in seen:
                    link = entry if entry.is_symlink() else seen[real]  # the real folder is not to blame
                    raise FrameError(
                        link,
                        f"links to {real}, a folder read already (a link back up the tree, or two paths "
                        "to one folder): remove the link",
                    )
                seen[real] = entry
                stack.append(entry)
            elif entry.is_file():
                yield entry
            elif entry.is_symlink():
                raise FrameError(
                    entry, f"a broken link (to {os.readlink(entry)}): restore its target or remove it"
                )


def _check_options(fmt: str, on_bad_line: str) -> None:
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected 'auto' or one of {', '.join(FORMATS)}")
    if on_bad_line not in ON_BAD_LINE:
        raise ValueError(f"on_bad_line must be 'error' or 'skip', got {on_bad_line!r}")


def _read(
    path: Path, fmt: str, on_bad_line: str, counts: FileCounts, source: str, attack: str
) -> pl.DataFrame:
    """``attack``: the type of the file's attack frames ('unknown' where the name says benign)."""
    if fmt == "cantt":
        fast = read_cantt_fast(path, attack, source)
        if fast is not None:
            counts.frames += fast.height
            return fast
        cand = read_cantt_lines(path, attack)
    elif fmt == "candump":
        cand = read_candump(path)
    elif fmt == "hcrl":
        cand = read_hcrl(path, attack)
    elif fmt == "hcrl_txt":
        cand = read_hcrl_txt(path)
    elif fmt == "blf":
        return finish(read_blf(path, on_bad_line, counts), path, on_bad_line, counts, source, unit="frame")
    else:
        cand = read_pycan_text(path, fmt, on_bad_line, counts)
    return finish(cand, path, on_bad_line, counts, source)
