"""Reading papers: the bundled listing pages and users' JSONL/CSV/arXiv-snapshot files.

A bad record is skipped with an issue naming its file and line; the rest of the file still loads.
The same paper met twice (same id) is one `Paper` that remembers every place it came from.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Iterable, Iterator

from .errors import CorpusError
from .types import Paper

SUFFIXES = (".txt", ".jsonl", ".json", ".csv")
_CHROME_EXACT = {"new", "Subscribe", "byAK and the research community"}
_CHROME_PREFIX = ("Get trending papers",)
_DATE = re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}(, \d{4})?")
_ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}(v\d+)?|[a-z\-]+(\.[A-Z]{2})?/\d{7}(v\d+)?")  # 2101.00001, hep-th/9901001
_ABSTRACT_MIN_CHARS = 200
_TITLE_MAX_CHARS = 300


class IssueKind(str, Enum):
    RECORD_SKIPPED = "record skipped"
    FILE_SKIPPED = "file skipped"
    DUPLICATE_ID = "duplicate id"
    DECODED = "decoded from another encoding"


@dataclass(frozen=True)
class CorpusIssue:
    path: str
    line: int
    message: str
    kind: IssueKind = IssueKind.RECORD_SKIPPED

    @property
    def skipped(self) -> bool:
        return self.kind in (IssueKind.RECORD_SKIPPED, IssueKind.FILE_SKIPPED)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


@dataclass
class CorpusRead:
    """Everything read from some paths: unique papers, how many listings they came from, and what was skipped."""

    papers: list[Paper] = field(default_factory=list)
    listings: int = 0
    issues: list[CorpusIssue] = field(default_factory=list)


def normalize_space(text: str) -> str:
    return " ".join(text.split())


def title_key(title: str) -> str:
    return normalize_space(title).casefold()


def paper_id_for_title(title: str) -> str:
    """Stable id from the title alone: the same title gets the same id on every machine and run."""
    return "p" + hashlib.sha1(title_key(title).encode()).hexdigest()[:12]


def _clean_id(raw: object) -> str:
    text = normalize_space(str(raw))
    return re.sub(r"[^A-Za-z0-9._:/-]", "_", text)[:128]


def iter_corpus_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        path = Path(path)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            yield path
        else:
            raise CorpusError(f"{path}: no such file or directory")


def read_corpus(paths: Iterable[Path]) -> CorpusRead:
    """Read and deduplicate papers from files and directories (recursing into .txt/.jsonl/.json/.csv)."""
    result = CorpusRead()
    by_id: dict[str, Paper] = {}
    for path in iter_corpus_files(paths):
        for paper in _read_file(path, result.issues):
            result.listings += 1
            seen = by_id.get(paper.id)
            if seen is None:
                by_id[paper.id] = paper
            elif seen.abstract != paper.abstract or title_key(seen.title) != title_key(paper.title):
                result.issues.append(
                    CorpusIssue(paper.sources[0].rsplit(":", 1)[0], int(paper.sources[0].rsplit(":", 1)[1]),
                                f"paper id {paper.id} was already read from {seen.sources[0]} with other text; kept the first",
                                IssueKind.DUPLICATE_ID)
                )
            else:
                by_id[paper.id] = replace(seen, sources=seen.sources + paper.sources)
    result.papers = list(by_id.values())
    return result


def _read_file(path: Path, issues: list[CorpusIssue]) -> Iterator[Paper]:
    data = path.read_bytes()
    wide = data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"))  # UTF-16/32 text holds NUL bytes
    if not wide and _looks_binary(data[:8192]):
        issues.append(CorpusIssue(str(path), 0, "binary file (NUL bytes), skipped", IssueKind.FILE_SKIPPED))
        return
    lines = _decode_lines(path, data, issues)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        yield from _read_listing(path, lines, issues)
    elif suffix in (".jsonl", ".json"):
        yield from _read_jsonl(path, lines, issues)
    elif suffix == ".csv":
        yield from _read_csv(path, lines, issues)
    else:
        issues.append(CorpusIssue(str(path), 0, f"unknown file type {suffix!r}; expected one of {', '.join(SUFFIXES)}",
                                  IssueKind.FILE_SKIPPED))


def _decode_lines(path: Path, data: bytes, issues: list[CorpusIssue]) -> list[str | None]:
    """One entry per line. UTF-8 as a rule; a file in another encoding (Latin-1, cp1252, UTF-16...) is decoded
    with the encoding detected for it, with one warning; if none fits, a line that is not UTF-8 becomes None so
    the record holding it is skipped."""
    try:
        text = data.decode("utf-8-sig")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1, "NUL byte")
    except UnicodeDecodeError:
        # UTF-8 with a few damaged lines (some lines hold valid multi-byte UTF-8) loses only those records;
        # a file with no valid UTF-8 beyond ASCII is in another encoding.
        text = None if _has_utf8_text(data) else _detected(path, data, issues)
    if text is not None:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [line.rstrip("\r") for line in lines]
    out: list[str | None] = []
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, 1):
        try:
            if b"\x00" in raw:
                raise UnicodeDecodeError("utf-8", raw, raw.index(b"\x00"), raw.index(b"\x00") + 1, "NUL byte")
            out.append(raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r"))
        except UnicodeDecodeError as exc:
            issues.append(CorpusIssue(str(path), number, f"not valid UTF-8 (byte {exc.start}); record skipped"))
            out.append(None)
    return out


# Encodings real files come in, most common first: short texts fit several equally well (é is 0xE9 in both
# cp1252 and cp1250, à is not), and then the more common one is the likelier.
_ENCODINGS = ("utf_16", "utf_32", "cp1252", "latin_1", "iso8859_15", "mac_roman", "cp1250", "iso8859_2", "cp1251",
              "koi8_r", "shift_jis", "euc_jp", "gb18030", "big5", "euc_kr")


_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f")


def _looks_binary(head: bytes) -> bool:
    """Control bytes make up over a tenth of it, or NULs over a hundredth (a stray NUL in text is a damaged line)."""
    if not head:
        return False
    return head.count(b"\x00") > len(head) / 100 or sum(head.count(bytes([b])) for b in _CONTROL) > len(head) / 10


def _has_utf8_text(data: bytes) -> bool:
    for line in data.split(b"\n"):
        if max(line, default=0) > 0x7F:
            try:
                line.decode("utf-8")
                return True
            except UnicodeDecodeError:
                continue
    return False


def _detected(path: Path, data: bytes, issues: list[CorpusIssue]) -> str | None:
    """The file decoded with the encoding charset-normalizer finds for it (None when none fits)."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data, cp_isolation=list(_ENCODINGS)))
    if not matches:
        return None
    least = min(m.chaos for m in matches)
    fitting = {m.encoding for m in matches if m.chaos <= least + 0.02}
    encoding = next(e for e in _ENCODINGS if e in fitting)
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    issues.append(CorpusIssue(str(path), 0, f"not UTF-8; read as {encoding}", IssueKind.DECODED))
    return text


def _listing_items(lines: list[str | None]) -> list[tuple[int, str | None]]:
    """Logical lines of a listing page with page chrome and date lines removed.

    Pages come in two layouts: one line per title/abstract, or blank-line-separated blocks. In the second,
    a block spread over several lines is joined.
    """
    blank = sum(1 for line in lines if line is not None and not line.strip())
    content = len(lines) - blank
    blocks = blank >= 0.3 * max(content, 1)
    items: list[tuple[int, str | None]] = []
    current: tuple[int, list[str | None]] | None = None

    def flush() -> None:
        nonlocal current
        if current is not None:
            parts = current[1]
            items.append((current[0], None if any(p is None for p in parts) else normalize_space(" ".join(parts))))
            current = None

    for number, line in enumerate(lines, 1):
        if line is not None:
            text = line.strip()
            if not text:
                flush()
                continue
            if text in _CHROME_EXACT or text.startswith(_CHROME_PREFIX) or _DATE.fullmatch(text):
                flush()
                continue
            if text.startswith("Subscribe") and len(text) > len("Subscribe"):
                text = text[len("Subscribe"):].strip()
        else:
            text = None
        if blocks:
            if current is None:
                current = (number, [])
            current[1].append(text)
        else:
            items.append((number, None if text is None else normalize_space(text)))
    flush()
    return items


def _looks_like_abstract(text: str) -> bool:
    return len(text) >= _ABSTRACT_MIN_CHARS


def _read_listing(path: Path, lines: list[str | None], issues: list[CorpusIssue]) -> Iterator[Paper]:
    items = _listing_items(lines)
    i = 0
    while i < len(items):
        number, title = items[i]
        if title is not None and (_looks_like_abstract(title) or len(title) > _TITLE_MAX_CHARS):
            issues.append(CorpusIssue(str(path), number, "abstract-like text with no title before it, skipped"))
            i += 1
            continue
        if i + 1 >= len(items):
            issues.append(CorpusIssue(str(path), number, "title with no abstract after it, skipped"))
            break
        a_number, abstract = items[i + 1]
        if abstract is not None and not _looks_like_abstract(abstract):
            issues.append(CorpusIssue(str(path), number, "title with no abstract after it, skipped"))
            i += 1
            continue
        i += 2
        if title is None or abstract is None:
            continue
        yield Paper(id=paper_id_for_title(title), title=title, abstract=abstract, sources=(f"{path}:{number}",))


def _as_tuple(value: object, split: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(normalize_space(str(v)) for v in value if str(v).strip())
    text = normalize_space(str(value))
    if not text:
        return ()
    parts = re.split(split, text) if split else [text]
    return tuple(p.strip() for p in parts if p.strip())


def _record_to_paper(path: Path, number: int, record: dict, issues: list[CorpusIssue]) -> Paper | None:
    title = normalize_space(str(record.get("title") or ""))
    abstract = normalize_space(str(record.get("abstract") or ""))
    missing = [name for name, value in (("title", title), ("abstract", abstract)) if not value]
    if missing:
        issues.append(CorpusIssue(str(path), number, f"record has no {' or '.join(missing)}, skipped"))
        return None
    raw_id = record.get("id")
    paper_id = _clean_id(raw_id) if raw_id not in (None, "") else paper_id_for_title(title)
    url = str(record.get("url") or "")
    if not url and raw_id and _ARXIV_ID.fullmatch(str(raw_id).strip()):
        url = f"https://arxiv.org/abs/{str(raw_id).strip()}"
    return Paper(
        id=paper_id,
        title=title,
        abstract=abstract,
        url=url,
        authors=_as_tuple(record.get("authors"), r",\s*| and "),
        published=str(record.get("published") or record.get("update_date") or ""),
        categories=_as_tuple(record.get("categories"), r"\s+"),
        sources=(f"{path}:{number}",),
    )


def _read_jsonl(path: Path, lines: list[str | None], issues: list[CorpusIssue]) -> Iterator[Paper]:
    texts = [line for line in lines if line is not None]
    if path.suffix.lower() == ".json" and texts and texts[0].lstrip().startswith("["):
        try:
            records = json.loads("\n".join(texts))
        except json.JSONDecodeError as exc:
            issues.append(CorpusIssue(str(path), exc.lineno, f"invalid JSON: {exc.msg}", IssueKind.FILE_SKIPPED))
            return
        for position, record in enumerate(records, 1):
            if not isinstance(record, dict):
                issues.append(CorpusIssue(str(path), 0, f"item {position} is not an object, skipped"))
                continue
            paper = _record_to_paper(path, position, record, issues)
            if paper:
                yield paper
        return
    for number, line in enumerate(lines, 1):
        if line is None or not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            issues.append(CorpusIssue(str(path), number, f"invalid JSON ({exc.msg}), skipped"))
            continue
        if not isinstance(record, dict):
            issues.append(CorpusIssue(str(path), number, "not a JSON object, skipped"))
            continue
        paper = _record_to_paper(path, number, record, issues)
        if paper:
            yield paper


def _read_csv(path: Path, lines: list[str | None], issues: list[CorpusIssue]) -> Iterator[Paper]:
    bad = {number for number, line in enumerate(lines, 1) if line is None}
    text = "\n".join(line if line is not None else "" for line in lines)
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in ("title", "abstract") if c not in header]
    if missing:
        issues.append(CorpusIssue(str(path), 1, f"CSV header lacks column(s) {', '.join(missing)}; file skipped",
                                  IssueKind.FILE_SKIPPED))
        return
    reader.fieldnames = header
    start = 1
    for row in reader:
        end = reader.line_num
        number = start + 1
        start = end
        if any(n in bad for n in range(number, end + 1)):
            continue
        if None in row:
            issues.append(CorpusIssue(str(path), number, "row has more fields than the header, skipped"))
            continue
        paper = _record_to_paper(path, number, row, issues)
        if paper:
            yield paper
