"""What can be checked of the paper's sources without Quarto (which these machines cannot install):

    problems = check_paper(Path("paper"))   # [] when every check passes

- the project (_quarto.yml) parses, and every file it names exists (the paper stage's outputs under data/
  may be absent before `dvc repro paper`, but must be files that stage writes);
- every cross-reference (@fig-, @tbl-, @sec-, @eq-) has its label, and every figure and table is referred to;
- every citation (@key) is in references.bib, and every entry there is cited;
- every `{{< var ... >}}` names a variable of _variables.yml (the paper stage writes it);
- no results paragraph or table holds a literal number: in a section whose heading carries the class
  `.results` (and its subsections), in the abstract and in every table, each number comes from a variable;
- each interactive figure (an {ojs} cell labelled fig-*) imports its chart module from figures/ and reads
  only the tables the paper stage writes.

`kdgat paper check` prints the problems (`make paper` runs it before rendering); tests/test_paper.py runs
each check on the real paper and shows each one failing on a broken copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kdgat.paper.figures import FIGURE_TABLES

CROSSREF_KINDS = ("fig", "tbl", "sec", "eq")
FENCE = re.compile(r"^(```+|~~~+)\s*(\{[^}]*\}|\w+)?.*?$\n(.*?)^\1\s*$", re.M | re.S)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*(\{[^}]*\})?\s*$", re.M)
KINDS = "|".join(CROSSREF_KINDS)
LABEL = re.compile(rf"#((?:{KINDS})-[\w-]+)")
CELL_LABEL = re.compile(r"^\s*(?://|#)\|\s*label:\s*[\"']?([\w-]+)", re.M)
REF = re.compile(rf"(?<![\w@])@((?:{KINDS})-[\w-]*\w)")
CITE = re.compile(r"(?<![\w@/.])@([A-Za-z][\w:-]*\w)")
VAR = re.compile(r"\{\{<\s*var\s+([\w.-]+)\s*>\}\}")
SHORTCODE = re.compile(r"\{\{<.*?>\}\}")
INLINE_CODE = re.compile(r"`[^`\n]*`")
MATH = re.compile(r"\$[^$\n]+\$")
LINK_TARGET = re.compile(r"\]\([^)]*\)")
ATTRS = re.compile(r"\{[#.][^}]*\}")
COMMENT = re.compile(r"<!--.*?-->", re.S)
# A number standing alone: 0.989, 1,230, 19, 5.9×, 1 %; not the digit of a name (F1, T², x86, gat_large)
NUMBER = re.compile(r"(?<![\w.\-/])[−+-]?\d+(?:[.,]\d+)*(?![\w])")
BIB_ENTRY = re.compile(r"^@(\w+)\s*\{\s*([^,\s]+)\s*,", re.M)
OJS_IMPORT = re.compile(r"""import\s*\{[^}]*\}\s*from\s*["']\./(figures/[\w./-]+)["']""")
ATTACHMENT = re.compile(r"""FileAttachment\(\s*["']([^"']+)["']\s*\)""")


@dataclass
class Document:
    """index.qmd cut into what the checks look at."""

    source: str
    front: dict[str, Any]
    body: str  # without the front matter
    prose: str  # body without code blocks and comments
    cells: list[tuple[str, str]] = field(default_factory=list)  # (engine, code) of each fenced block


def read_document(path: Path) -> Document:
    source = path.read_text()
    front: dict[str, Any] = {}
    body = source
    if source.startswith("---\n"):
        end = source.index("\n---", 4)
        front = yaml.safe_load(source[4:end]) or {}
        body = source[end + 4 :]
    cells = [((m.group(2) or "").strip("{} ").split(" ")[0], m.group(3)) for m in FENCE.finditer(body)]
    prose = COMMENT.sub("", FENCE.sub("", body))
    return Document(source, front, body, prose, cells)


def _text(prose: str) -> str:
    """Prose as read for references: no inline code, shortcodes, link targets or attribute blocks."""
    for pattern in (INLINE_CODE, SHORTCODE, LINK_TARGET, ATTRS):
        prose = pattern.sub(" ", prose)
    return prose


def cross_refs(doc: Document) -> list[str]:
    labels = set(LABEL.findall(doc.body)) | set(CELL_LABEL.findall("\n".join(c for _, c in doc.cells)))
    refs = set(REF.findall(_text(doc.prose)))
    problems = [f"@{r}: no such label" for r in sorted(refs - labels)]
    unused = sorted(lbl for lbl in labels - refs if lbl.startswith(("fig-", "tbl-")))
    return problems + [f"#{lbl}: never referred to (@{lbl})" for lbl in unused]


def bib_keys(path: Path) -> list[str]:
    return [
        key for kind, key in BIB_ENTRY.findall(path.read_text()) if kind.lower() not in ("comment", "string")
    ]


def citations(doc: Document, bib: Path) -> list[str]:
    if not bib.exists():
        return [f"{bib.name}: not found"]
    keys = bib_keys(bib)
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    cited = {
        k for k in CITE.findall(_text(doc.prose)) if not k.startswith(tuple(f"{c}-" for c in CROSSREF_KINDS))
    }
    return (
        [f"@{k}: not in {bib.name}" for k in sorted(cited - set(keys))]
        + [f"{bib.name}: {k} is never cited" for k in sorted(set(keys) - cited)]
        + [f"{bib.name}: {k} appears twice" for k in dupes]
    )


def lookup(tree: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            raise KeyError(key)
        tree = tree[part]
    return tree


def variables(doc: Document, values: Path) -> list[str]:
    names = VAR.findall(doc.source)
    if not values.exists():
        return [f"{values.name}: not found; `dvc repro paper` writes it"] if names else []
    tree = yaml.safe_load(values.read_text()) or {}
    problems = []
    for name in sorted(set(names)):
        try:
            value = lookup(tree, name)
        except KeyError:
            problems.append(f"{{{{< var {name} >}}}}: no such variable in {values.name}")
            continue
        if isinstance(value, dict | list):
            problems.append(f"{{{{< var {name} >}}}}: a group of variables, not one value")
    return problems


def result_sections(doc: Document) -> list[tuple[str, str]]:
    """(heading, text) of each section whose heading carries `.results`, its subsections included."""
    heads = list(HEADING.finditer(doc.prose))
    out = []
    for i, h in enumerate(heads):
        if ".results" not in (h.group(3) or ""):
            continue
        level = len(h.group(1))
        end = next((n.start() for n in heads[i + 1 :] if len(n.group(1)) <= level), len(doc.prose))
        out.append((h.group(2), doc.prose[h.end() : end]))
    return out


def _numbers(text: str) -> list[str]:
    for pattern in (SHORTCODE, INLINE_CODE, MATH, LINK_TARGET, ATTRS, REF, CITE):
        text = pattern.sub(" ", text)
    return NUMBER.findall(text)


def literal_numbers(doc: Document) -> list[str]:
    """Numbers typed by hand where the results are stated (module docstring)."""
    problems = []
    sections = result_sections(doc)
    if not sections:
        problems.append("no section heading carries `.results`: the results sections must be marked")
    for heading, text in sections:
        for line in text.splitlines():
            if line.lstrip().startswith("|"):
                continue  # a table row: the table check below reports it
            if found := _numbers(line):
                problems.append(f"§ {heading}: literal {', '.join(found)} in: {line.strip()[:100]}")
    for line in doc.prose.splitlines():
        if line.lstrip().startswith("|") and (found := _numbers(line.replace("|", " "))):
            problems.append(f"table: literal {', '.join(found)} in: {line.strip()[:100]}")
    abstract = str(doc.front.get("abstract", ""))
    if found := _numbers(abstract):
        problems.append(f"abstract: literal {', '.join(found)}")
    return sorted(set(problems), key=problems.index)


def figures(doc: Document, paper: Path) -> list[str]:
    problems = []
    for engine, code in doc.cells:
        if engine != "ojs":
            continue
        for module in OJS_IMPORT.findall(code):
            if not (paper / module).is_file():
                problems.append(f"{{ojs}} imports ./{module}, which does not exist")
        for name in ATTACHMENT.findall(code):
            table = Path(name)
            if table.parent != Path("data") or table.suffix != ".parquet" or table.stem not in FIGURE_TABLES:
                problems.append(f"{{ojs}} reads {name}, which the paper stage does not write")
    used = {Path(m).name for _, c in doc.cells if _ == "ojs" for m in OJS_IMPORT.findall(c)}
    modules = {p.name for p in (paper / "figures").glob("*.js")} - {"common.js", "host.js"}
    problems += [f"figures/{m}: no {{ojs}} cell draws it" for m in sorted(modules - used)]
    return problems


def project(paper: Path) -> list[str]:
    """_quarto.yml parses and every file it names exists (paper-stage outputs: written by that stage)."""
    path = paper / "_quarto.yml"
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        return [f"{path}: {err}"]
    problems = []
    if not isinstance(config, dict) or "project" not in config:
        return [f"{path}: no `project` section"]
    named: list[str] = list(config["project"].get("render", []))
    named += [config.get("bibliography", "")] if isinstance(config.get("bibliography"), str) else []
    named += config.get("metadata-files", [])
    html = config.get("format", {}).get("html", {}) or {}
    for key in ("css", "include-in-header", "csl"):
        value = html.get(key) or config.get(key)
        named += [value] if isinstance(value, str) else list(value or [])
    for name in named:
        if name and not (paper / name).exists():
            problems.append(f"_quarto.yml names {name}, which does not exist")
    for pattern in config["project"].get("resources", []):
        if pattern.startswith("data/"):
            stems = {Path(t).stem for t in FIGURE_TABLES}
            if not any(Path(f"data/{s}.parquet").match(pattern) for s in stems):
                problems.append(f"_quarto.yml resource {pattern}: matches none of the paper stage's tables")
        elif not any(paper.glob(pattern)):
            problems.append(f"_quarto.yml resource {pattern}: matches no file")
    return problems


def check_paper(paper: Path = Path("paper")) -> list[str]:
    """Every check of the module docstring on paper/index.qmd; the problems found, [] when none."""
    doc = read_document(paper / "index.qmd")
    return [
        *project(paper),
        *cross_refs(doc),
        *citations(doc, paper / "references.bib"),
        *variables(doc, paper / "_variables.yml"),
        *literal_numbers(doc),
        *figures(doc, paper),
    ]
