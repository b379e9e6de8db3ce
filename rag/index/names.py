"""What papers are called: full titles, the short names they go by ("DEUP", "VPT"), and the abbreviations their
abstracts define ("reinforcement learning from human feedback (RLHF)").

Extracted once per paper at ingest and stored in the paper table's database (so a 100k-paper index opens without
rebuilding anything); looked up per question with a few indexed SQL queries.
"""
from __future__ import annotations

import re
import sqlite3
from functools import lru_cache

from ..text import abbreviated, coined, digits_apart, fold, singular, split_sentences
from ..types import Paper

HEAD_WORDS = 3
MAX_PAPERS_PER_NAME = 3  # a name shared by many titles (LLM, GPT) identifies no paper
MIN_TITLE_CHARS = 12

SCHEMA = """
CREATE TABLE IF NOT EXISTS names (name TEXT NOT NULL, paper_id TEXT NOT NULL, PRIMARY KEY (name, paper_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS names_by_paper ON names (paper_id);
CREATE TABLE IF NOT EXISTS titles (paper_id TEXT PRIMARY KEY, head TEXT NOT NULL, folded TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS titles_by_head ON titles (head);
CREATE VIRTUAL TABLE IF NOT EXISTS title_words USING fts5 (folded, paper_id UNINDEXED);
CREATE TABLE IF NOT EXISTS aliases (short TEXT NOT NULL, long TEXT NOT NULL, paper_id TEXT NOT NULL,
    PRIMARY KEY (short, long, paper_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aliases_by_long ON aliases (long);
CREATE INDEX IF NOT EXISTS aliases_by_paper ON aliases (paper_id);
CREATE TABLE IF NOT EXISTS capitals (token TEXT NOT NULL, paper_id TEXT NOT NULL, PRIMARY KEY (token, paper_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS capitals_by_paper ON capitals (paper_id);
CREATE VIRTUAL TABLE IF NOT EXISTS paper_words USING fts5 (title, abstract, content='papers', content_rowid='n');
"""

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9]|[A-Za-z0-9]")
_INTRODUCES = re.compile(r"\b(propose|proposes|introduce|introduces|present|presents|call|called|name|named|dub|dubbed|"
                         r"term|termed|release|releases)\b", re.IGNORECASE)
_PAREN_SHORT = re.compile(r"\(([A-Za-z][A-Za-z0-9\-+]{1,14})\)")
# "FIND (Function INterpretation and Description)": the short form first, the parentheses holding exactly its long form
_SHORT_FIRST = re.compile(r"\b([A-Za-z][A-Za-z0-9\-+]{1,14})\s+\(([A-Za-z][^()]{4,80})\)")
# "Leave-One-Out K-Nearest-Neighbor, or LOOK for short", "…, abbreviated as ABC", "…, dubbed LeBeD",
# "… Sequence Folding method, referred to as LBSF", "…, denoted as DUAL", "…, also known as ABC"
_SHORT_AFTER = re.compile(r",\s+(?:also\s+)?(?:or|abbreviated(?:\s+as)?|hereafter|called|termed|dubbed|namely|"
                          r"referred\s+to\s+as|denoted(?:\s+as|\s+by)?|known\s+as)\s+([A-Za-z][A-Za-z0-9\-+]{1,14})\b")
# What the names tables hold (recorded in the index manifest): 1: "long form (SHORT)" only; 2: also "SHORT (long
# form)" and "long form, or SHORT for short"; 3: a hyphenated long form ("out-of-distribution (OOD)") counts; 4: the
# abbreviation-like tokens each paper writes (the capitals table), so a widely used one (AI, GP, ReLU) names no paper;
# 5: a token ending in "ss" ("FocalLoss") is not a plural; 6: a phrase index over titles and abstracts (paper_words),
# so a long form many papers write ("neural networks") makes its abbreviation (NNs) name no paper, and both
# full-text indexes keyed by the papers table's row number (n); 7: "long form, referred to as / denoted as / also
# known as SHORT" defines SHORT too; 8: such a long form ends on a word starting with the short form's last letter
# (of its singular: "Generative Adversarial Network, or GANs" was lost in 7); 9: a long form whose word initials
# spell the short form is taken whole ("Proximal Policy Optimization (PPO)", not "Policy Optimization").
NAMES_VERSION = 9


def abbreviation_tokens(text: str) -> set[str]:
    """The text's abbreviation-like tokens, folded and without a plural s."""
    return {fold(singular(w)) for w in _WORD.findall(text) if abbreviated(w)}


def short_names(paper: Paper) -> set[str]:
    """Short names a paper goes by: a coined head before a colon ("DEUP: ..."), a parenthesised short form
    ("(VPT)"), or a coined title word that the abstract introduces ("we propose QuantMCU"). A coined word the
    abstract merely uses (ImageNet, GPT-4) names a dataset or model, not this paper."""
    title = paper.title
    names: set[str] = set()
    head = title.split(":", 1)[0].strip() if ":" in title else ""
    if head and len(head) >= 3 and len(head.split()) <= 3 and any(coined(w) for w in head.split()):
        names.add(head.casefold())
    names.update(m.casefold() for m in re.findall(r"\(([A-Za-z0-9\-+@]{3,})\)", title) if coined(m))
    for token in _WORD.findall(title):
        if len(token) < 3 or not coined(token):  # cheap test first: the regex below is the costly part
            continue
        if re.search(rf"{_INTRODUCES.pattern}\W+(?:[\w\-]+\W+){{0,3}}{re.escape(token)}\b", paper.abstract,
                     re.IGNORECASE):
            names.add(token.casefold())
    return names


# A sentence that coins something: its subject ("we", "this paper", "our …"), then a coining verb (not inside a
# hyphenated word: "long-term" is no "term")
_COINER = re.compile(r"\b(?:we|this paper|this work|our)\b", re.IGNORECASE)
_COINING = re.compile(r"(?<![\w\-])(?:propose[sd]?|introduce[sd]?|present(?:s|ed)?|develop(?:s|ed)?|call(?:s|ed)?|"
                      r"name[sd]?|dub(?:s|bed)?|termed|coin(?:s|ed)?|design(?:s|ed)?)(?![\w\-])", re.IGNORECASE)
# Words that end the coined thing's phrase: what follows them is used, not coined ("we propose a method for GNN
# models", "we present results on ALFWorld", "we propose X, which outperforms DQN")
_NOT_COINED = frozenset("to for on from with of in into against by via over than at as which that who where while "
                        "and or but using based".split())


@lru_cache(maxsize=1024)
def coined_in(abstract: str) -> tuple[str, ...]:
    """The names an abstract coins, as written ("SCoRe", "NATURAL INSTRUCTIONS"): after "we propose / introduce /
    develop / call …" in one sentence, the first run of words with two or more capitals outside parentheses (a
    parenthesis defines an abbreviation, which the aliases hold), with no preposition or clause word before it
    ("we develop a … (RL) approach, SCoRe, that …", "we present PORTAL, a …", "an approach named PORTAL").
    (short_names reads a title's coined words with a narrower rule, fixed by the names version.) Cached: the
    name index asks it once per coined token of a question and the verifier once per comparative, of the same
    few abstracts."""
    found = []
    for start, end in split_sentences(abstract):
        sentence = abstract[start:end]
        subject = _COINER.search(sentence)
        if not subject:
            continue
        for verb in _COINING.finditer(sentence, subject.end()):
            name = _first_run(sentence[verb.end():])
            if name:
                found.append(name)
    return tuple(dict.fromkeys(found))


def _first_run(text: str) -> str | None:
    """The first run of words with two or more capitals outside parentheses ("NATURAL INSTRUCTIONS"; a comma ends
    it: "BOSS, PORTAL" is two names, only the first coined), unless a word of _NOT_COINED or the end of the
    clause comes first."""
    depth, run = 0, []
    for token in re.finditer(r"[(),;:.]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9]|[A-Za-z0-9]", text):
        word = token.group(0)
        if word == "," and not run:  # "an approach, SCoRe, that": the comma before the name sets it off
            continue
        if word in "()":
            depth = max(depth + (1 if word == "(" else -1), 0)
            continue
        if depth:
            continue
        if abbreviated(word):
            run.append(word)
            continue
        if run or word in ",;:." or word.casefold() in _NOT_COINED:
            break
    return " ".join(run) or None


def _introduces(abstract: str, token: str) -> bool:
    """The abstract coins this token, written as here (PALM is not PaLM)."""
    return any(token == singular(w) for name in coined_in(abstract) for w in name.split())


_LINKING = {"of", "for", "and", "the", "from", "to", "in", "on", "with", "a", "an", "by", "via"}


def _by_initials(letters: list[str], words: list[str]) -> str | None:
    """The fewest last words whose initials (hyphenated parts each counted, linking words skipped) spell the short
    form: "Proximal Policy Optimization (PPO)", where the letters rule alone stops at "Policy Optimization" (its
    p is inside "Optimization")."""
    for n in range(1, len(words) + 1):
        tail = words[-n:]
        parts = [part for word in tail for part in word.split("-") if part]
        every = [part[0].casefold() for part in parts]
        spelled = [part[0].casefold() for part in parts if part.casefold() not in _LINKING]
        if every == letters or (spelled == letters and tail[0].casefold() not in _LINKING):
            return " ".join(tail)  # one part per letter: two or more, as the short forms read have
        if len(spelled) > len(letters):
            return None
    return None


def _long_form(short: str, before: str) -> str | None:
    """The run of words before "(SHORT)" that SHORT abbreviates: the words whose initials spell it, else Schwartz &
    Hearst's letters rule; two words (or hyphenated parts) at least."""
    letters = [c.casefold() for c in singular(short) if c.isalnum()]
    words = before.split()[-min(len(letters) + 5, 2 * len(letters)):]
    long = _by_initials(letters, words)
    if long is None:
        long = _by_letters(letters, " ".join(words))
    return long if long and len(re.split(r"[\s\-]+", long)) >= 2 else None  # "out-of-distribution (OOD)" too


def _by_letters(letters: list[str], text: str) -> str | None:
    """Schwartz & Hearst's letters rule: the shortest tail of the text holding the letters in order, the first one
    starting a word."""
    s, pos = len(letters) - 1, len(text) - 1
    while s >= 0:
        while pos >= 0 and (text[pos].casefold() != letters[s] or (s == 0 and pos > 0 and text[pos - 1].isalnum())):
            pos -= 1
        if pos < 0:
            return None
        pos -= 1
        s -= 1
    start = text.rfind(" ", 0, pos + 1) + 1
    return text[start:]


def _without_head_noun(before: str, short: str) -> str:
    """"a … Sequence Folding method, referred to as LBSF": the long form ends on a word (or hyphenated part) that
    starts with the short form's last letter (of its singular: GANs → n), not on the noun it names (method,
    optimizer, agents; at most two words dropped)."""
    last = [c for c in singular(short) if c.isalnum()][-1].casefold()
    words = before.split()
    for _ in range(2):
        if len(words) > 1 and not any(part[:1].casefold() == last for part in words[-1].split("-")):
            words.pop()
    return " ".join(words)


def abbreviations(text: str) -> set[tuple[str, str]]:
    """(short, long) pairs a text defines, folded: {("rlhf", "reinforcement learning from human feedback")}.
    Three ways of writing it, each checked by the letters rule: "long (SHORT)", "SHORT (long)", and "long, or
    SHORT for short" (there the short form must be mostly capitals: "called SharpeRatio" names, not abbreviates)."""
    found = set()

    def add(short: str, before: str, whole: bool = False) -> None:
        long = _long_form(short, before)
        if long and (not whole or long == before.strip()) and fold(short) not in fold(long).split():
            found.add((fold(singular(short)), fold(long)))

    for match in _PAREN_SHORT.finditer(text):
        if abbreviated(match.group(1)):
            add(match.group(1), text[: match.start()].rsplit(".", 1)[-1])
    for match in _SHORT_FIRST.finditer(text):
        if abbreviated(match.group(1)):
            add(match.group(1), match.group(2), whole=True)
    for match in _SHORT_AFTER.finditer(text):
        short = match.group(1)
        letters = [c for c in short if c.isalpha()]
        if sum(c.isupper() for c in letters) >= max(2, len(letters) / 2):
            add(short, _without_head_noun(text[: match.start()].rsplit(".", 1)[-1], short))
    return found


def name_rows(paper: Paper) -> dict[str, list[tuple]]:
    """The rows this paper contributes to each name table."""
    folded = fold(paper.title)
    rows: dict[str, list[tuple]] = {"names": [(n, paper.id) for n in short_names(paper)], "titles": [],
                                    "aliases": []}
    if len(folded) >= MIN_TITLE_CHARS:
        rows["titles"].append((paper.id, " ".join(folded.split()[:HEAD_WORDS]), folded))
    text = f"{paper.title}. {paper.abstract}"
    rows["aliases"] = [(s, l, paper.id) for s, l in abbreviations(text)]
    rows["capitals"] = [(t, paper.id) for t in sorted(abbreviation_tokens(text))]
    return rows


def forget_words(db: sqlite3.Connection, ids: list[str]) -> None:
    """Take these papers out of the two full-text indexes, before their rows in the papers table are replaced.
    Both are keyed by the papers table's row number `n` (an INTEGER PRIMARY KEY, which VACUUM keeps): the phrase
    index reads its text from that table (so it must be told the old text to remove), and a delete by row number
    is a lookup where one by paper id scans the whole index (25 ms a paper at 100k papers)."""
    rows = select_in(db, "SELECT n, title, abstract FROM papers WHERE id IN ({})", ids)
    db.executemany("INSERT INTO paper_words (paper_words, rowid, title, abstract) VALUES ('delete', ?, ?, ?)", rows)
    db.executemany("DELETE FROM title_words WHERE rowid = ?", [(rowid,) for rowid, _, _ in rows])


def write_names(db: sqlite3.Connection, papers: list[Paper]) -> None:
    """Replace the name rows of these papers and index their text. Inside the caller's transaction, in this order:
    `forget_words` for the papers, their rows written to the papers table, then this."""
    ids = [(p.id,) for p in papers]
    for table in ("names", "titles", "aliases", "capitals"):
        db.executemany(f"DELETE FROM {table} WHERE paper_id = ?", ids)
    db.executemany("INSERT INTO paper_words (rowid, title, abstract) SELECT n, title, abstract FROM papers "
                   "WHERE id = ?", ids)
    db.executemany("INSERT INTO title_words (rowid, folded, paper_id) SELECT n, ?, id FROM papers WHERE id = ?",
                   [(fold(p.title), p.id) for p in papers])
    for paper in papers:
        for table, rows in name_rows(paper).items():
            if rows:
                marks = ",".join("?" * len(rows[0]))
                db.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)


_CONNECTORS = r"(?:is|are|all|you|of|the|a|an|for|with|to|in|on|and|from|by|as|at|not|do|can|via|without)"
_CONNECTOR = re.compile(_CONNECTORS)
_CAP_WORD = r"[A-Z][\w\-']*"
# a span ends on a capitalised word: "Reward Design for RL Agents argue" is not "… Agents a(rgue)"
_TITLE_SPAN = re.compile(rf"{_CAP_WORD}(?:\s+(?:{_CONNECTORS}\s+)*{_CAP_WORD})+")
_QUESTION_WORDS = {"what", "which", "how", "who", "why", "when", "where", "does", "do", "is", "are", "according",
                   "in", "the", "tell", "explain", "describe"}


def _capitalised_heads(question: str) -> set[str]:
    """Runs of HEAD_WORDS words written as a title would be (capitalised, connectors apart), folded."""
    tokens = _WORD.findall(question)
    heads = set()
    for i in range(len(tokens) - HEAD_WORDS + 1):
        run = tokens[i:i + HEAD_WORDS]
        if run[0][:1].isupper() and run[-1][:1].isupper() and run[0].casefold() not in _QUESTION_WORDS and all(
                w[:1].isupper() or _CONNECTOR.fullmatch(w) for w in run):
            heads.add(fold(" ".join(run)))
    return heads


class NameIndex:
    """Lookups over the stored names. Thread-safe as long as the connection is (SQLite serialises)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def match(self, question: str) -> list[str]:
        """Ids of papers whose full title the question contains, or whose short name it uses."""
        folded = fold(question)
        words = folded.split()
        heads = sorted({" ".join(words[i : i + n]) for n in range(1, HEAD_WORDS + 1) for i in range(len(words) - n + 1)})
        hits: list[str] = []
        rows = self._select("SELECT folded, paper_id, head FROM titles WHERE head IN ({})", heads)
        written = _capitalised_heads(question)
        by_head: dict[str, set[str]] = {}
        for _, pid, head in rows:
            by_head.setdefault(head, set()).add(pid)
        for title, pid, head in rows:
            # the whole title, or its first words written as a title ("Effective Reward Specification") when no
            # other paper's title opens with them
            if (title in folded or (head in written and len(by_head[head]) == 1)) and pid not in hits:
                hits.append(pid)
        words = _WORD.findall(question)
        candidates = {w.casefold() for w in words}
        candidates |= {h.strip().casefold() for h in re.findall(r"[A-Za-z0-9][A-Za-z0-9\- ]{2,40}", question)}
        lowercase = {w for w in words if w.islower()} - {w.casefold() for w in words if not w.islower()}
        for pid in (self.papers_named(sorted(candidates), lowercase) + self.papers_defining(question)
                    + self.papers_writing(question)):
            if pid not in hits:
                hits.append(pid)
        return hits

    def papers_defining(self, question: str) -> list[str]:
        """Papers whose abstract defines an abbreviation the question uses as one ("What is GOAT?" → the paper
        that writes "Generalizable Offline goAl-condiTioned RL (GOAT)"). Only tokens written with two or more
        capitals count, so the plain word "find" never names the FIND paper; an abbreviation defined by more
        than MAX_PAPERS_PER_NAME abstracts (RL, LLM), or written by more (AI, GP, ReLU: defined by a few,
        used by many), names none; nor does a definition whose long form more write (NNs: "neural networks")."""
        shorts = sorted(abbreviation_tokens(question))
        shared = {t for t, n in self._select("SELECT token, COUNT(*) FROM capitals WHERE token IN ({}) GROUP BY token",
                                             shorts) if n > MAX_PAPERS_PER_NAME}
        rows = self._select("SELECT DISTINCT short, long, paper_id FROM aliases WHERE short IN ({})",
                            [s for s in shorts if s not in shared])
        common = {long for long in {r[1] for r in rows} if self._widely_written(long)}
        return _unambiguous(sorted({(short, pid) for short, long, pid in rows if long not in common}))

    def papers_writing(self, question: str) -> list[str]:
        """Papers whose abstract coins (coined_in) a token the question writes with two or more capitals (SCoRe,
        PORTAL), when at most MAX_PAPERS_PER_NAME papers write the token so: a name an abstract coins in its own
        words ("we develop … an approach, SCoRe, …") names its paper though no title or definition holds it. A
        paper merely using a name (DINOv2, DQN, PaLM as baselines or backbones) is not named by it, nor is one
        whose abbreviation any abstract defines (papers_defining decides those); one many write (LLMs) names none.
        Written in capitals and coined, a name counts however many abstracts write the plain word ("score")."""
        written = {fold(singular(w)): singular(w) for w in _WORD.findall(question) if abbreviated(w)}
        for (short,) in self._select("SELECT DISTINCT short FROM aliases WHERE short IN ({})", sorted(written)):
            del written[short]  # an abbreviation some abstract defines is papers_defining's (MARL, GNN: the field's)
        rows = self._select("SELECT token, paper_id FROM capitals WHERE token IN (SELECT token FROM capitals WHERE "
                            f"token IN ({{}}) GROUP BY token HAVING COUNT(*) <= {MAX_PAPERS_PER_NAME}) "
                            "ORDER BY token, paper_id", sorted(written))
        if not rows:
            return []
        abstracts = dict(self._select("SELECT id, abstract FROM papers WHERE id IN ({})", sorted({p for _, p in rows})))
        return list(dict.fromkeys(pid for token, pid in rows if _introduces(abstracts.get(pid, ""), written[token])))

    def _widely_written(self, long: str) -> bool:
        """More than MAX_PAPERS_PER_NAME papers write this long form, singular or plural ("neural network(s)",
        "Gaussian process(es)", "polic(y|ies)"): its abbreviation is the field's word, not a paper's name. One
        query over exact phrases (a prefix would also match "generat*" for "generation" and read whole posting
        lists)."""
        words = long.split()  # folded: lower-case letters, digits and spaces
        return bool(words) and self._written_by_many(
            " ".join(words[:-1] + [last]) for last in sorted(_number_forms(words[-1])))

    def _written_by_many(self, phrases) -> bool:
        """More than MAX_PAPERS_PER_NAME papers' titles or abstracts write one of these phrases (FTS5 phrase
        strings, quotes doubled; a phrase without a letter or digit matches nothing)."""
        quoted = ['"{}"'.format(p.replace('"', '""')) for p in phrases if any(c.isalnum() for c in p)]
        if not quoted:
            return False
        return self._count_writing(quoted, MAX_PAPERS_PER_NAME + 1) > MAX_PAPERS_PER_NAME

    def _count_writing(self, quoted: list[str], limit: int) -> int:
        """How many papers' titles or abstracts write one of these quoted FTS5 phrases, counted up to `limit`."""
        return self.db.execute("SELECT COUNT(*) FROM (SELECT 1 FROM paper_words WHERE paper_words MATCH ? LIMIT ?)",
                               (" OR ".join(quoted), limit)).fetchone()[0]

    def _plain_word(self, name: str) -> bool:
        """A paper writes the name in capitals (BEAT) and another as a plain word ("beat the baselines"): written in
        lower case in a question ("which one claims to beat …"), it is the word, not the name. (A question that
        also writes it in capitals, "Does BEAT beat …", means the name; a use at the start of a sentence or inside
        a hyphenated word elsewhere in the corpus counts as a plain use.)"""
        capitalised = self.db.execute("SELECT COUNT(*) FROM (SELECT 1 FROM capitals WHERE token = ? LIMIT ?)",
                                      (fold(name), MAX_PAPERS_PER_NAME + 1)).fetchone()[0]
        if not capitalised or capitalised > MAX_PAPERS_PER_NAME:  # many capitalised writers: no name anyway
            return False
        return self._written_by_more_than(name, capitalised)

    def papers_named(self, names: list[str], lowercase: set[str] = frozenset()) -> list[str]:
        """Papers going by any of these (folded) names, skipping names shared by too many papers and names more
        papers write than that: a title's short name that is the field's word (ReLU, D4RL) or a plain one (FOCUS,
        SAFE: "is it safe to …") names no paper; retrieval still finds a paper by it. Of the names the question
        writes only in lower case (`lowercase`), those other papers use as plain words name none either."""
        rows = self._select("SELECT name, paper_id FROM names WHERE name IN ({}) ORDER BY name, paper_id", names)
        common = {name for name in {name for name, _ in rows}
                  if self._written_by_many([name]) or (name in lowercase and self._plain_word(name))}
        return _unambiguous([row for row in rows if row[0] not in common])

    def truecase(self, question: str, ordinary: frozenset[str]) -> str:
        """The question with names written as the corpus writes them: typed in lower case ("how does lora pick its
        rank" → LoRA, "lrms" → LRMs) or with the digits run on ("GPT4", "CIFAR10", "LLaMA65B" → GPT-4, CIFAR-10,
        LLaMA-65B). The stages that read names (anchors, short names, the name check) read capitals, and terms and
        BM25 read "gpt4" as one unknown word; users often type either way. A lower-case word (or its singular) only
        when the language does not have it (`ordinary`: the embedding model's whole-word vocabulary, so "clip",
        "goat", "find", "docs" stay words); either only when some paper writes it as a coined name and fewer papers
        write it at all than write it so."""
        keys: dict[str, list[tuple[str, bool]]] = {}
        for word in set(_WORD.findall(question)):
            folded = fold(word)
            if word.islower() and word not in ordinary:
                keys[word] = [(k, p) for k, p in _name_keys(word) if not (p and word[:-1] in ordinary)]
            elif digits_apart(folded) != folded:  # run on, in any case: only the form with the digits apart
                keys[word] = [(digits_apart(folded), False)]
        rows = self._select("SELECT token, paper_id FROM capitals WHERE token IN ({})",
                            sorted({k for ks in keys.values() for k, _ in ks} | {fold(w) for w in keys}))
        writers: dict[str, list[str]] = {}
        for token, pid in rows:
            writers.setdefault(token, []).append(pid)
        for word, candidates in sorted(keys.items()):
            key, plural = next(((k, p) for k, p in candidates if k in writers), (None, False))
            if key is None or (not word.islower() and fold(word) in writers) or self._plain_anywhere(key):
                continue  # the corpus writes it as typed too, or some paper writes it plainly
            cased = self._written_as(key, writers[key][:MAX_PAPERS_PER_NAME])
            if cased:
                question = re.sub(rf"(?<![\w\-]){re.escape(word)}(?![\w\-])", cased + ("s" if plural else ""),
                                  question)
        return question

    def _plain_anywhere(self, key: str) -> bool:
        """More papers write the word than write it in capitals (alone or inside a hyphened name: "GPT-4-turbo",
        "Tiny-ImageNet"): some paper uses it as a plain word. The names holding it are counted (a scan of the
        capitals table) only when more papers write it than write it alone in capitals."""
        alone = self.db.execute("SELECT COUNT(*) FROM capitals WHERE token = ?", (key,)).fetchone()[0]
        if not self._written_by_more_than(key, alone):
            return False
        within = self.db.execute(
            "SELECT COUNT(DISTINCT paper_id) FROM capitals WHERE token = ? OR token LIKE ? OR token LIKE ? OR "
            "token LIKE ?", (key, f"{key} %", f"% {key}", f"% {key} %")).fetchone()[0]
        return self._written_by_more_than(key, within)

    def _written_by_more_than(self, phrase: str, papers: int) -> bool:
        """More than `papers` papers' titles or abstracts write this (folded) phrase, in any case."""
        return self._count_writing(['"{}"'.format(phrase.replace('"', '""'))], papers + 1) > papers

    def _written_as(self, key: str, paper_ids: list[str]) -> str | None:
        """The coined form these papers write the folded name in (GPT-4 for "gpt 4", LRM for "lrm" written "LRMs"),
        most often first."""
        pattern = re.compile(r"(?<![A-Za-z0-9])" + r"[\s\-]?".join(map(re.escape, key.split())) +
                             r"(?=s?(?![A-Za-z0-9]))", re.IGNORECASE)
        forms: dict[str, int] = {}
        for title, abstract in self._select("SELECT title, abstract FROM papers WHERE id IN ({})", paper_ids):
            for found in pattern.findall(f"{title}. {abstract}"):
                if _name_form(found):
                    forms[found] = forms.get(found, 0) + 1
        return max(sorted(forms), key=lambda f: forms[f]) if forms else None

    def names_unknown_paper(self, question: str) -> str | None:
        """A title-like phrase in the question ("according to Language Models are Few-Shot Learners") that no
        indexed title contains: the question is about a paper the index does not hold. A phrase the question itself
        defines as the long form of an abbreviation ("Contrastive Predictive Coding (CPC)") names a method, not a
        paper. (One the corpus defines may still be a missing paper's title: "Denoising Diffusion Probabilistic
        Models" is both.)"""
        defined_here = {long for _, long in abbreviations(question)}
        for span in _TITLE_SPAN.findall(question):
            words = span.split()
            while words and (words[0].casefold() in _QUESTION_WORDS or not words[0][:1].isupper()):
                words.pop(0)  # "According to A Generalization Theory …": the title starts at "A"
            if sum(w[:1].isupper() and not coined(w) for w in words) < 3:
                continue  # a run of method names ("SmoothGrad and Integrated Gradients") is not a title
            phrase = fold(" ".join(words))
            if phrase in defined_here:
                continue
            if not any(self._title_holds(variant) for variant in self._spelled_out(phrase)):
                return " ".join(words)
        return None

    def _title_holds(self, phrase: str) -> bool:
        return self.db.execute("SELECT 1 FROM title_words WHERE title_words MATCH ? LIMIT 1",
                               (f'"{phrase}"',)).fetchone() is not None

    def _spelled_out(self, phrase: str) -> list[str]:
        """The phrase as written, then with the abbreviations the corpus defines spelled out ("Reward Design for RL
        Agents" is the title "Reward Design for Reinforcement Learning Agents")."""
        tokens = phrase.split()
        longs = self.expansions(sorted(set(tokens)))
        spelled = " ".join(longs[t][0] if t in longs else t for t in tokens)
        return [phrase] + ([spelled] if spelled != phrase else [])

    def names_of(self, paper_id: str) -> list[str]:
        """The short names a paper goes by, and the abbreviations its abstract defines (folded)."""
        rows = self.db.execute("SELECT name FROM names WHERE paper_id = ? UNION SELECT short FROM aliases WHERE "
                               "paper_id = ?", (paper_id, paper_id)).fetchall()
        return sorted(r[0] for r in rows)

    def expansions(self, shorts: list[str]) -> dict[str, list[str]]:
        """Long forms the corpus defines for these abbreviations (folded), most often defined first."""
        out: dict[str, list[str]] = {}
        rows = self._select("SELECT short, long, COUNT(*) AS n FROM aliases WHERE short IN ({}) GROUP BY short, long "
                            "ORDER BY short, n DESC, long", shorts)
        for short, long, _ in rows:
            out.setdefault(short, []).append(long)
        return out

    def abbreviations_of(self, phrases: list[str]) -> dict[str, list[str]]:
        """Abbreviations the corpus defines for these long forms (folded)."""
        out: dict[str, list[str]] = {}
        for short, long in self._select("SELECT DISTINCT short, long FROM aliases WHERE long IN ({}) ORDER BY short",
                                        phrases):
            out.setdefault(long, []).append(short)
        return out

    def _select(self, sql: str, values: list[str]) -> list[tuple]:
        return select_in(self.db, sql, values)


def _name_keys(word: str) -> list[tuple[str, bool]]:
    """The folded forms the capitals table may hold a typed word under, each with whether it drops a plural s."""
    bases = [(word, False)] + ([(word[:-1], True)] if word.endswith("s") and not word.endswith("ss") else [])
    return [(key, plural) for base, plural in bases for key in dict.fromkeys((fold(base), digits_apart(fold(base))))]


def _name_form(found: str) -> bool:
    """A coined name, each of whose hyphened parts is written as a name (GPT-4, CIFAR-10, OOD-IL, Vicuna-13B; not
    "sElf-rewarding", which spells an acronym out of a plain word)."""
    parts = [p for p in re.split(r"[\s\-]+", found) if p]
    return coined(found) and (len(parts) == 1 or all(
        abbreviated(p) or any(c.isdigit() for c in p) or p[:1].isupper() for p in parts))


_SIBILANT = ("s", "x", "z", "ch", "sh")  # the endings whose regular plural adds "es" ("processes", not "rates")


def _number_forms(word: str) -> set[str]:
    """A word's singular and plural spellings (English regular forms; both directions). Where the ending does
    not tell, both readings are kept ("responses" → response and respons, "bias" → biases): a form no paper
    writes costs nothing, a missing one undercounts."""
    forms = {word}
    if word.endswith("ies"):
        forms |= {word[:-3] + "y", word[:-1]}                      # policies, movies
    elif word.endswith("es") and word[:-2].endswith(_SIBILANT):
        forms |= {word[:-2], word[:-1]}                            # processes, responses
    elif word.endswith("s") and not word.endswith("ss"):
        forms |= {word[:-1], word + "es"}                          # networks, bias
    elif word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        forms.add(word[:-1] + "ies")
    else:
        forms.add(word + ("es" if word.endswith(_SIBILANT) else "s"))
    return forms


def _unambiguous(rows: list[tuple]) -> list[str]:
    """Paper ids of (name, paper id) rows sorted by name, dropping names shared by more than MAX_PAPERS_PER_NAME."""
    by_name: dict[str, list[str]] = {}
    for name, pid in rows:
        by_name.setdefault(name, []).append(pid)
    return [pid for name in sorted(by_name) if len(by_name[name]) <= MAX_PAPERS_PER_NAME for pid in by_name[name]]


def select_in(db: sqlite3.Connection, sql: str, values: list[str]) -> list[tuple]:
    """Run `sql` with its `IN ({})` filled by one placeholder per value (nothing to look up: no rows)."""
    if not values:
        return []
    return db.execute(sql.format(",".join("?" * len(values))), values).fetchall()
