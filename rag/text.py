"""Text primitives shared by every stage: the one sentence splitter, the one word tokenizer, numbers, names.

One mechanism per job: ingest splits abstracts with `split_sentences` and stores the spans; the verifier splits
generated text with the same function; BM25, term weights and evidence coverage all use `terms`.
"""
from __future__ import annotations

import re
from functools import lru_cache

_ABBREVIATIONS = {
    "e.g", "i.e", "et al", "al", "vs", "fig", "figs", "eq", "eqs", "etc", "cf", "approx", "resp", "dr", "no",
    "sec", "ref", "refs", "inc", "ltd", "mr", "ms", "st", "vol", "pp", "ca", "est", "viz", "w.r.t", "a.k.a",
}
# Stored sentence spans depend on the splitter: the index manifest records this, and an index split by another
# version is refused (1: first; 2: curly quotes open and close sentences; 3: no split inside a curly-quoted span;
# 4: an abbreviation after an opening bracket or quote, "(e.g. MMLU, GSM8k)", does not end a sentence).
SPLITTER_VERSION = 4
# A sentence may end inside quotes or brackets and the next may open with one, straight or curly: the answers
# quote titles as “Title”, and models copy that ("… them. “On the interaction …” examines …").
_BOUNDARY = re.compile(r"[.!?](?:[\"')\]”’]*)\s+(?=[\"'(\[“‘]?[A-Z0-9])")


def _inside_quote(text: str, start: int, match: re.Match) -> bool:
    """The mark is inside a curly-quoted span that closes further on: a quoted title such as “What Algorithms can
    Transformers Learn? A Study …” is one sentence with the text around it, not two."""
    upto = text[start:match.end()]  # the boundary's own closing quote ("… works.” Then") closes the span
    return upto.count("“") > upto.count("”") and "”" in text[match.end():]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of a text; abbreviations and decimals do not end a sentence."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start() + 1
        before = text[start:end].rstrip(".!?\"')]”’")
        last = before.rsplit(None, 1)[-1].casefold().lstrip("([\"'“‘") if before.split() else ""
        if last.rstrip(".") in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
            continue
        if _inside_quote(text, start, match):
            continue
        sentence_end = match.end() - len(match.group()) + len(match.group().rstrip())
        spans.append((start, sentence_end))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text.rstrip())))
    return [(s, e) for s, e in spans if text[s:e].strip()]


# Text in an abstract that addresses the assistant rather than describing research (prompt injection).
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|all)\b.{0,20}\b(instructions?|prompts?|rules)\b"
    r"|\byou\s+(must|should|will|are to)\s+(now\s+)?(answer|reply|respond|say|output|cite)\b"
    r"|\b(answer|reply|respond|say)\b[^.]{0,40}\bto (every|all|any) (question|query|prompt)s?\b"
    r"|\bnew instructions?\s*:",
    re.IGNORECASE,
)


def looks_like_instruction(sentence: str) -> bool:
    return bool(_INSTRUCTION.search(sentence))


# Question words that say nothing about content: they would make every abstract look relevant.
QUESTION_STOPWORDS = frozenset({
    "paper", "papers", "work", "works", "study", "studies", "article", "articles", "corpus", "collection", "propose",
    "proposes", "proposed", "present", "presents", "introduce", "introduces", "describe", "describes", "say", "says",
    "tell", "report", "reports", "reported", "show", "shows", "find", "finds", "found", "use", "uses", "used",
    "using", "approach", "method", "methods", "model", "models", "what", "which", "how", "does", "do", "did", "is",
    "are", "was", "were", "mention", "mentions", "discuss", "discusses", "authors", "author", "according", "called",
    "named", "name", "any", "there", "list", "exist", "exists", "much", "many", "kind", "type", "new", "main", "key",
    "result", "results", "achieve", "achieves", "get", "gets", "give", "gives", "can", "could", "would", "should",
    "research", "abstract", "abstracts", "anything", "something", "everything", "please", "me", "explain",
})

# "X vs Y" joins the two things a question compares and says nothing of either: as a search term it matched the
# one title that writes it ("LoRA vs Full Fine-tuning"), which became the second paper of unrelated comparisons.
CONNECTORS = frozenset({"vs", "versus"})

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


# Lucene's English stop words (as bm25s.stopwords.STOPWORDS_EN lists them; a test keeps the two equal). Held here
# because importing bm25s pulls in scipy, ~0.35 s that a question never needs.
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with"))
_QUESTION_STOPWORDS = STOPWORDS | QUESTION_STOPWORDS


def words(text: str) -> list[str]:
    """Lower-cased word tokens (two characters or more), the unit every term is made from."""
    return _TOKEN.findall(text.casefold())


def stem(word_list: list[str]) -> list[str]:
    return _stemmer().stemWords(word_list)


# Stored term statistics (sentence terms, IDF, BM25) depend on `terms`: the index manifest records this, and an
# index counted by another version is refused (1: first; 2: British spellings counted as American; 3: an
# abbreviation's plural counted as the abbreviation, "LLMs" → llm; 4: also typed in lower case, "llms", and
# "FocalLoss" keeps its ss).
TERMS_VERSION = 4
_BRITISH = re.compile(r"(?<=\w\w)(?:is(?=(?:e|ed|es|ing|ation|ations|er|ers|able)$)|ys(?=(?:e|ed|es|ing|er|ers)$)|"
                      r"(?<=i)our(?=(?:s|al|ally)?$))")
_BRITISH_OUR = re.compile(r"^(colo|favo|labo|neighbo|humo|hono|flavo|rumo|vapo|harbo|endeavo|armo)ur")
_AMERICAN = {"is": "iz", "ys": "yz", "our": "or"}


@lru_cache(maxsize=65536)
def _american(word: str) -> str:
    """One spelling per word: optimisation → optimization, analyse → analyze, behaviour → behavior."""
    if len(word) < 5:
        return word
    word = _BRITISH_OUR.sub(r"\1r", word)
    return _BRITISH.sub(lambda m: _AMERICAN[m.group()], word)


def abbreviated(token: str) -> bool:
    """Written like an abbreviation: two or more capitals (GOAT, ReLU, NNs), unlike the plain word "find"."""
    return sum(c.isupper() for c in token) >= 2


def singular(short: str) -> str:
    """An abbreviation without its plural s: "GNNs" → "GNN" ("ReLUs" → "ReLU"; "FocalLoss" keeps its ss)."""
    plural = short.endswith("s") and not short.endswith("ss")
    return short[:-1] if plural and abbreviated(short) else short


_PLURAL_CANDIDATE = re.compile(r"\b\w*[A-Z]\w*s\b")
# A lower-case word with no vowel before its final s is an abbreviation's plural typed in lower case ("llms",
# "cnns", "lstms"): the stemmer keeps it, and it would share no term with the abstracts' "LLMs".
_VOWELLESS_PLURAL = re.compile(r"^[^aeiouy\d]{3,}s$")


def terms(text: str, *, question: bool = False) -> list[str]:
    """The one word tokenizer: lower-cased, one spelling per word (British → American), stemmed, English stop
    words out (and question boilerplate for questions). BM25, the IDF table and evidence coverage all count these.
    An abbreviation's plural counts as the abbreviation (LLMs = LLM, N-LMRMs = N-LMRM).
    (Hyphenated compounds also counted joined, "pre-training" → pretrain, were tried: sentence ranking gained,
    list membership lost on dev out of fold; not kept.)"""
    stop = _QUESTION_STOPWORDS if question else STOPWORDS
    text = _PLURAL_CANDIDATE.sub(lambda m: singular(m.group()), text)  # the stemmer keeps "llms" (no vowel)
    return stem([w[:-1] if _VOWELLESS_PLURAL.match(w) else _american(w) for w in words(text) if w not in stop])


_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\.\d+)?")


def numbers_in(text: str) -> set[str]:
    """Numbers as written ("4.5", "1,000" → "1000"), for checking that a claim's numbers are in its source."""
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


# Numbers written as words count as numbers ("four properties", "a four-stage roadmap", "hundreds of tasks"); "one"
# does not: it is as often a pronoun ("one of the methods").
_NUMBER_WORDS = ("two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|"
                 "eighty|ninety|hundreds?|thousands?|millions?|billions?|dozens?")
_QUANTITY = re.compile(rf"(?<![\w.\-])\d+(?:[.,]\d+)*|\b(?:{_NUMBER_WORDS})\b", re.IGNORECASE)


def states_quantity(text: str) -> bool:
    """Whether the text holds a number standing alone (4.5x, 30%, 128 GPUs, four properties), not one inside a
    name (GPT-4)."""
    return _QUANTITY.search(text) is not None


_NAME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-+@.]*[A-Za-z0-9+]|[A-Za-z0-9]")


def coined(word: str) -> bool:
    """A made-up name (DEUP, A2PR, LoRA, SlowFast, GPT-4, FPR95), not a capitalised ordinary word (Fine-Tuning)."""
    parts = [p for p in word.split("-") if p]
    if any(len(p) >= 3 and p.isupper() for p in parts):
        return True
    if any(any(ch.isupper() for ch in p[1:]) for p in parts):
        return True
    if len(parts) > 1 and any(len(p) == 1 and p.isupper() for p in parts):
        return True
    return any(ch.isdigit() for ch in word) and any(ch.isupper() for ch in word)


def short_names(text: str) -> set[str]:
    """The coined names in a text as abbreviations are looked up: folded, without a plural s ("LLMs" → "llm")."""
    return {fold(singular(t)) for t in name_tokens(text)}


def name_tokens(text: str) -> list[str]:
    """Coined names in a text, as written (trailing dots dropped): the tokens a paper, model or metric goes by."""
    out = []
    for token in _NAME_TOKEN.findall(text):
        token = token.rstrip(".")
        if len(token) >= 2 and coined(token):
            out.append(token)
    return out


_LETTERS_THEN_DIGITS = re.compile(r"(?<=[a-z]{2})(?=\d)")


def digits_apart(folded: str) -> str:
    """A folded name with the digits after two or more letters set apart, as users and papers write them either way:
    "gpt4" and "gpt 4" (GPT-4), "llama65b" and "llama 65b" (LLaMA-65B); "gpt 4o" stays GPT-4o, and "a100", "t5",
    "l2" stay one token (an A100 is not "a 100%")."""
    return _LETTERS_THEN_DIGITS.sub(" ", folded)


def fold(text: str) -> str:
    """Lower-case, non-alphanumerics to single spaces: how titles and names are compared."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.casefold()).split())


# Kinds of writing a question may ask for in other words than the abstract calls itself: "Is there a review of …"
# for "This survey …", "course notes" for "These lecture notes …", "a position piece" for "this position paper".
# A phrase counts only as the head of what the question asks for ("is there a review of", "any thesis arguing"),
# not in another sense ("peer review bias", "survey data", "of course"). Competitions were left out: "competition"
# and "competitive" are one stem, so "shared task" would have been covered by every "competitive results".
GENRES = (
    ("survey", "review", "overview"),
    ("thesis", "dissertation"),
    ("lecture notes", "course notes", "tutorial"),
    ("position paper", "position piece", "perspective paper", "perspective piece", "opinion piece"),
)
_ASKED_FOR = r"\b(?:a|an|any|the|this|which|what|some|there|recent)\s+(?:[\w\-']+\s+){{0,2}}?{phrase}" \
             r"(?=\s+(?:of|on|about|that|which|who|where|in|to|from|by|\w+ing)\b|\s*(?:[?.!,;:]|$))"
_GENRE_PATTERNS = {
    phrase: re.compile(_ASKED_FOR.format(phrase=re.escape(phrase[:-2]) + "(?:is|es)" if phrase.endswith("is")
                                         else re.escape(phrase) + "s?"), re.IGNORECASE)
    for kind in GENRES for phrase in kind}


def genres_named(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """(phrase, its kind) for each kind of writing the text asks for."""
    return [(phrase, kind) for kind in GENRES for phrase in kind if _GENRE_PATTERNS[phrase].search(text)]


def genre_synonyms(text: str) -> str:
    """The other phrases of each kind of writing the text asks for, appended to a lexical search for it (a question
    asking for "a review" finds "A Survey of …")."""
    named = genres_named(text)
    kinds = dict.fromkeys(kind for _, kind in named)
    said = {phrase for phrase, _ in named}
    return "".join(f" {other}" for kind in kinds for other in kind if other not in said)
