"""The answer chain: retrieve → rank evidence → decide whether and from which papers the corpus answers → compose.

The intent read from the question picks the composition: one paper's answer sentences (fact, definition), every
paper on a topic (list), each of two papers' facts side by side (compare), or bibliographic metadata. With an LLM
configured the model writes from numbered sources and only verified sentences reach the user; without one the
extractive composer quotes the chosen sentences, each cited.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Callable

from .citations import attach_marker, defang
from .compare import about_one_paper, compare_sentence, reads_as_two, second_paper
from .config import Settings
from .errors import LLMError
from .evidence import EvidenceSelector, PaperEvidence, anchors
from .metadata import implied_filters, topic_left, without_metadata
from .prompts import REFUSAL, load_prompt
from .support import (Judged, QuestionSignals, alternatives, answer_threshold, gate_threshold, judge_answers, judge_list,
                      holds_every_name, list_gate_threshold, list_threshold, named_paper_terms, passes_number_guard,
                      topic_absent)
from .text import terms
from .types import (AbstainReason, Answer, Citation, Hit, Intent, MetadataField, Query, Usage, Verification)

OnToken = Callable[[str], None] | None
LIST_POOL = 40
COMPARE_POOL = 10
NAMES_POOL = 10  # the retrieved papers one of which should hold everything a one-paper question names
FOCUS_DISCOUNT = 0.5
# Half or more of the question's content words in no indexed abstract: off-corpus, answered by no paper and not
# sent to an LLM. On dev it stops 6 of 80 unanswerable questions and no answerable one (the highest share among
# answerable dev questions is 0.33).
OFF_CORPUS_SHARE = 0.5
# With an LLM a list question shows the model every pooled candidate above the on_topic model's recall-oriented
# bar (chosen on dev to keep 99% of gold members; the offline list's own cut keeps ~65%), best first, as many as
# the context budget holds. A cap of 20 cut 2 of 173 dev gold members (reference endpoint, exhaustive keep
# 158 -> 160 of 173 without it).
_FIELD_WORDS = {MetadataField.AUTHORS: "authors", MetadataField.DATE: "publication dates",
                MetadataField.CATEGORY: "subject categories", MetadataField.OTHER: "venues, affiliations or citation counts"}


class AnswerChain:
    def __init__(self, retriever, embedder, settings: Settings, llm=None):
        self.retriever = retriever
        self.embedder = embedder
        self.store = retriever.index.store
        self.settings = settings
        self.selector = EvidenceSelector(self.store, slots=max(settings.answer.max_sentences,
                                                                settings.answer.compare_sentences))
        if llm is None and settings.llm.base_url:
            from .llm import LLMClient

            llm = LLMClient.from_settings(settings.llm)
        self.llm = llm

    @property
    def backend_name(self) -> str:
        return self.llm.name if self.llm is not None else "extractive (offline, no LLM)"

    def ask(self, query: Query, on_token: OnToken = None) -> Answer:
        if not query.filters:
            implied = implied_filters(query, self.store)
            if implied:
                query = replace(query, filters=implied, warnings=query.warnings + (
                    f"answered from the papers with {implied.describe()} (read from the question)",))
                topic = without_metadata(query.asked, implied)
                if topic != query.asked and terms(topic, question=True):
                    query = replace(query, topic=topic, retrieval=query.retrieval and topic,
                                    vector=self.retriever.embed(topic))
        hits, evidence, signals = self.gather(query, wider=self._reads_more(query))
        evidence, beyond = self._split_pool(query, evidence)
        if query.intent is Intent.METADATA and query.filters and self._metadata_paper(query, evidence) is None:
            query = replace(query, intent=Intent.LIST)  # "papers … published since 2024": which papers, not a field
        base = dict(question=query.typed or query.question, sources=tuple(hits), standalone_question=query.standalone,
                    warnings=query.warnings, intent=query.intent)
        if query.off_topic and not query.focus:  # a follow-up about the conversation's paper is judged by it
            return self._abstain(base, on_token, Verification(abstain_reason=AbstainReason.OFF_TOPIC))
        if signals.unseen_share >= OFF_CORPUS_SHARE and not (query.focus or query.filters) and \
                query.intent is not Intent.METADATA:
            return self._abstain(base, on_token, Verification(abstain_reason=AbstainReason.OFF_CORPUS))
        if query.intent is Intent.METADATA:
            return self._metadata(query, evidence, base, on_token)
        reading, judged = self._papers_asked_about(query, evidence, signals)
        if reading is not None:  # then pooled and judged as questions of that kind are
            query = replace(query, intent=reading)
            hits, evidence, signals = self.gather(query, wider=self._reads_more(query))
            evidence, beyond = self._split_pool(query, evidence)
            base.update(sources=tuple(hits), intent=reading)
            judged = None
        if query.intent is Intent.LIST and query.filters and not topic_left(query):
            chosen = self._all_passing(query)
        elif query.intent is Intent.LIST:
            chosen = self._list_members(query, evidence, signals)
        else:
            chosen, top = self._answering(query, evidence, signals, judged)
            if top is not None:
                base.update(confidence=top.probability, candidate=top.evidence.paper_id)
        if self.llm is not None:
            sources = self._llm_sources(query, evidence, signals, chosen, beyond)
            if sources:
                try:
                    return self._written(query, sources, chosen, base, on_token)
                except LLMError as exc:
                    base["warnings"] = query.warnings + (f"{exc}; answered extractively instead",)
        if not chosen:
            return self._abstain(base, on_token, Verification(abstain_reason=self._why_not(query, evidence, signals)))
        return self._extractive(query, chosen, base, on_token)

    def _pool(self, query: Query) -> int:
        """How many papers the offline decisions weigh: top-k, or a larger pool for lists and comparisons."""
        top_k = self.settings.retrieval.top_k
        pools = {Intent.LIST: max(LIST_POOL, top_k), Intent.COMPARE: max(COMPARE_POOL, top_k)}
        return query.k or pools.get(query.intent, top_k)

    def _reads_more(self, query: Query) -> int:
        """Papers retrieved beyond the decision pool for a capable model to read (`llm.max_sources`): the answer
        is often a paraphrase whose paper ranks 6th-15th, which the model can read and the verifier check."""
        if self.llm is None or self._reads_chosen_only() or query.intent in (Intent.LIST, Intent.METADATA) or query.k:
            return 0  # an explicit k is how many papers to retrieve
        return max(self.settings.llm.max_sources - self._pool(query), 0)

    def _split_pool(self, query: Query, evidence: list[PaperEvidence]) -> tuple[list[PaperEvidence],
                                                                                list[PaperEvidence]]:
        """The decision pool (what the learned models were trained on; their pool-relative features depend on
        its size) and the papers retrieved beyond it."""
        k = self._pool(query)
        return [pe for pe in evidence if pe.hit.rank <= k], [pe for pe in evidence if pe.hit.rank > k]

    def gather(self, query: Query, wider: int = 0) -> tuple[list[Hit], list[PaperEvidence], QuestionSignals]:
        """Retrieve a pool sized for the intent (plus `wider` papers) and rank every pooled paper's sentences.
        The `wider` papers come from a second, deeper search: a deeper search fuses more candidates, which moved
        the top 5 of 33 of 200 dev questions at k=30, and the pool must be the one the offline decisions see."""
        k = self._pool(query)
        vector = query.vector if query.vector is not None else self.retriever.embed(query.search_text)
        search = partial(self.retriever.search, query.search_text, focus=query.focus, vector=vector,
                         filters=query.filters)
        hits = search(k)
        if wider:
            pooled = {h.paper_id for h in hits}
            more = [h for h in search(k + wider) if h.paper_id not in pooled][:wider]
            hits += [replace(h, rank=k + n) for n, h in enumerate(more, 1)]  # beyond the pool even when it is short
        evidence = self.selector.select(query, vector, hits)
        return hits, evidence, self._signals(query)

    def _signals(self, query: Query) -> QuestionSignals:
        question_anchors = anchors(query.judged, self.store)
        asked = terms(query.judged, question=True)
        df = self.store.doc_freq([t for a in question_anchors for t in terms(a)] + asked)
        return QuestionSignals(
            anchors=len(question_anchors),
            unseen_anchor=any(all(df.get(t, 0) == 0 for t in terms(a)) for a in question_anchors if terms(a)),
            unknown_title=bool(self.store.names.names_unknown_paper(query.question)),
            named_paper=named_paper_terms(query.question),
            rare_terms=frozenset(sorted(set(asked), key=lambda t: (df.get(t, 0), t))[:2]),
            unseen_share=sum(df.get(t, 0) == 0 for t in set(asked)) / max(len(set(asked)), 1),
            alternatives=alternatives(query.judged, self.store.idf) if query.intent is Intent.LIST else ())

    def papers_about(self, text: str) -> list[tuple[str, str]]:
        """(id, title) of the paper a piece of conversation is about: the best match for what was said."""
        hits = self.retriever.search(text, 1) if text.strip() else []
        return [(h.paper_id, h.paper.title) for h in hits]

    def condense(self, history: list[dict], question: str) -> str:
        """The LLM's standalone rewrite of a follow-up ("" without an LLM, when `llm.condense` resolves to
        offline, or when the call fails)."""
        if self.llm is None or self._tiny_model_policy(self.settings.llm.condense, "offline"):
            return ""
        turns = "\n".join(f"{m['role']}: {m['content']}" for m in history)
        prompt = load_prompt("condense").render(history=turns, question=question)
        try:
            completion = self.llm.complete([{"role": "user", "content": prompt}])
        except LLMError:
            return ""
        return " ".join(completion.text.split())[:1000]

    # ---- which papers answer --------------------------------------------------------------------
    def _answering(self, query: Query, evidence: list[PaperEvidence], signals: QuestionSignals,
                   judged: list[Judged] | None = None) -> tuple[list[Judged], Judged | None]:
        """The paper that answers (two for a comparison), or [] when none clears the threshold; and the best
        candidate whatever the threshold (its probability is the answer's confidence). `judged`: the papers as
        _judge ranks them, when already judged for this query and pool."""
        judged = self._judge(query, evidence, signals) if judged is None else judged
        threshold = answer_threshold(self.settings.answer)
        held = [j for j in judged if j.evidence.paper_id in query.focus]
        if held and held[0].probability >= threshold * FOCUS_DISCOUNT and query.intent is not Intent.COMPARE:
            return held[:1], held[0]  # a follow-up is about the conversation's paper while that paper bears on it
        top = judged[0] if judged else None
        if top is None or top.probability < threshold:
            return [], top
        if query.intent is not Intent.COMPARE:  # from the best paper holding every name asked about (after the
            # reading was settled: a comparison read as one paper's fact names things no one paper holds); names no
            # pooled paper holds together are declined here too, and _why_not says NAMES_APART
            named = [j for j in judged if holds_every_name(query, j.evidence)]
            return ([named[0]] if named and named[0].probability >= threshold else []), top
        other = second_paper(query, judged, self.store, threshold, reask=lambda text: self._judge_reworded(query, text))
        return [judged[0]] + ([other] if other else []), top

    def _papers_asked_about(self, query: Query, evidence: list[PaperEvidence],
                            signals: QuestionSignals) -> tuple[Intent | None, list[Judged] | None]:
        """The intent the corpus shows when the reading from the words alone took one paper for two or two for
        one: a one-paper fact or definition whose terms split between two likely papers is a comparison; a
        comparison whose best paper lacks nothing another pooled paper holds is one paper's fact. Not for
        follow-ups (the conversation's papers are the ones asked about). The papers are judged as the reading
        judges them (a one-paper number question's papers must show a number), and returned with the reading
        so that a question not re-read is judged once."""
        if query.focus or query.intent not in (Intent.FACT, Intent.DEFINITION, Intent.COMPARE):
            return None, None
        threshold = answer_threshold(self.settings.answer)
        judged = self._judge(query, evidence, signals)
        if not judged or judged[0].probability < threshold:
            return None, judged
        if query.intent is Intent.COMPARE:
            return (Intent.FACT if about_one_paper(query, judged, self.store) else None), judged
        # names no one paper holds together ("the LoRA paper's rank for GPT-3") are declined unless both papers
        # are as likely to answer as a one-paper answer must be
        two = reads_as_two(query, judged, self.store, threshold, _names_apart(query, evidence))
        return (Intent.COMPARE if two else None), judged

    def _judge(self, query: Query, evidence: list[PaperEvidence], signals: QuestionSignals) -> list[Judged]:
        """Papers by P(states the answer), those the number guard lets through."""
        return [j for j in judge_answers(query, evidence, signals)
                if passes_number_guard(query, j.evidence, self.settings.answer.max_sentences)]

    def _judge_reworded(self, query: Query, text: str) -> list[Judged]:
        """The papers judged for another wording of the same question (its intent and answer type kept)."""
        if not terms(text, question=True):
            return []  # nothing is left to ask but question words ("how does in compare to with")
        reworded = replace(query, question=text, standalone="", retrieval="", topic="", vector=self.retriever.embed(text))
        return self._judge(reworded, *self.gather(reworded)[1:])

    def _list_members(self, query: Query, evidence: list[PaperEvidence], signals: QuestionSignals) -> list[Judged]:
        if self._topic_absent(query, evidence):
            return []
        cut = list_threshold(self.settings.answer)
        return [j for j in judge_list(evidence, signals) if j.probability >= cut][: self.settings.answer.list_max_papers]

    def _topic_absent(self, query: Query, evidence: list[PaperEvidence]) -> bool:
        """A list question on a topic no paper covers, for the offline list (with an LLM the model reads the
        candidates above the list gate and may say none is on the topic: the gate before a call blocks only
        clearly off-corpus questions). Not with filters or a conversation's papers, as the off-corpus rule: the
        question's metadata words ("published since 2024") are no topic, and a follow-up is asked with its
        papers' titles."""
        return not (query.filters or query.focus) and topic_absent(evidence, self.store.count())

    def _all_passing(self, query: Query) -> list[Judged]:
        """'Papers by X since 2023' with no topic: every paper the filters pass, newest first."""
        papers = sorted(self.store.get(self.store.matching(query.filters)).values(),
                        key=lambda p: (p.published, p.title), reverse=True)[: self.settings.answer.list_max_papers]
        hits = [Hit(paper=p, score=1.0, rank=n) for n, p in enumerate(papers, 1)]
        vector = query.vector if query.vector is not None else self.retriever.embed(query.search_text)
        return [Judged(pe, 1.0) for pe in sorted(self.selector.select(query, vector, hits), key=lambda e: e.hit.rank)]

    def _why_not(self, query: Query, evidence: list[PaperEvidence], signals: QuestionSignals) -> AbstainReason:
        if signals.unknown_title:
            return AbstainReason.UNKNOWN_PAPER
        if query.intent is Intent.LIST:
            return AbstainReason.NO_TOPIC if self._topic_absent(query, evidence) else AbstainReason.NO_SUPPORT
        if _names_apart(query, evidence):
            return AbstainReason.NAMES_APART
        unguarded = judge_answers(query, evidence, signals)
        if unguarded and unguarded[0].probability >= answer_threshold(self.settings.answer):
            would = unguarded[0].evidence  # the paper that would have answered, had a guard not removed it
            if not passes_number_guard(query, would, self.settings.answer.max_sentences):
                return AbstainReason.NO_NUMBER
            if not holds_every_name(query, would):
                return AbstainReason.MISSING_NAME
        if signals.anchors and evidence and all(pe.anchors_missing for pe in evidence[:3]):
            return AbstainReason.MISSING_NAME
        return AbstainReason.NO_SUPPORT

    # ---- composing ------------------------------------------------------------------------------
    @staticmethod
    def _abstain(base: dict, on_token: OnToken, verification: Verification, usage: Usage | None = None,
                 text: str = REFUSAL) -> Answer:
        if on_token:
            on_token(text)
        return Answer(text=text, citations=(), abstained=True, usage=usage or Usage(), verification=verification,
                      **base)

    def _metadata(self, query: Query, evidence: list[PaperEvidence], base: dict, on_token: OnToken) -> Answer:
        """Bibliographic questions are answered from the papers' records, or say which field the index lacks."""
        column = query.metadata.value if query.metadata and query.metadata is not MetadataField.OTHER else None
        paper = self._metadata_paper(query, evidence)
        values = getattr(paper, column) if paper is not None and column else None
        if not values:
            what = _FIELD_WORDS[query.metadata or MetadataField.OTHER]
            held = "" if column and self.store.has_metadata(column) else " The index holds no " + what + "."
            note = f"{REFUSAL}{held}" if held else REFUSAL
            return self._abstain(base, on_token, Verification(abstain_reason=AbstainReason.NO_METADATA), text=note)
        shown = ", ".join(values) if isinstance(values, tuple) else str(values)
        text = f"{query.metadata.value.capitalize()} of \u201c{defang(paper.title)}\u201d [1]: {shown}."
        if on_token:
            on_token(text)
        first = self.store.sentences([paper.id]).get(paper.id, ([], None))[0]
        quote = first[0].text if first else paper.abstract[:200]
        return Answer(text=text, citations=(Citation(1, paper.id, paper.title, quote),), abstained=False, **base)

    def _metadata_paper(self, query: Query, evidence: list[PaperEvidence]):
        """The paper a metadata question is about: the conversation's, or one the question names."""
        for pid in query.focus:
            for pe in evidence:
                if pe.paper_id == pid:
                    return pe.hit.paper
        named = [pe for pe in evidence if pe.hit.title_match]
        return named[0].hit.paper if named else None

    def _extractive(self, query: Query, chosen: list[Judged], base: dict, on_token: OnToken,
                    verification: Verification | None = None, usage: Usage | None = None) -> Answer:
        papers = [j.evidence for j in chosen]
        if query.intent is Intent.LIST:
            text, citations = _list_answer(papers)
        elif len(papers) == 2:
            text, citations = _compare_answer(query, papers, self.settings.answer.compare_sentences)
        else:
            text, citations = _single_answer(papers[0], self.settings.answer.max_sentences)
        if on_token:
            on_token(text)
        return Answer(text=text, citations=tuple(citations), abstained=False,
                      usage=usage or Usage(), verification=verification or Verification(), **base)

    # ---- with an LLM ----------------------------------------------------------------------------
    def _llm_sources(self, query: Query, evidence: list[PaperEvidence], signals: QuestionSignals,
                     chosen: list[Judged], beyond: list[PaperEvidence]) -> list[PaperEvidence]:
        """What the model reads. The gate before the call blocks only clearly off-corpus questions (a threshold
        chosen on dev for almost no false abstention); past it the model reads the chooser's papers, the others
        above the gate, then the papers retrieved beyond the decision pool, and it and the verifier decide. With
        the `chosen` policy the model reads only the chooser's papers (none: no call, the chooser's abstention)."""
        if self._reads_chosen_only():
            return [j.evidence for j in chosen]
        if query.intent is Intent.LIST:
            if chosen and chosen[0].probability == 1.0 and query.filters:
                return [j.evidence for j in chosen]  # every paper the metadata filters pass
            judged = judge_list(evidence, signals)
            return [j.evidence for j in judged if j.probability >= list_gate_threshold()]
        gate = gate_threshold()
        first = [j.evidence for j in chosen]
        rest = [j.evidence for j in judge_answers(query, evidence, signals)
                if j.probability >= gate and j.evidence not in first]
        if beyond and (first or rest):  # judged among the whole wider pool, as the papers of one ranking
            rest += [j.evidence for j in judge_answers(query, evidence + beyond, signals)
                     if j.probability >= gate and j.evidence in beyond]
        return (first + rest)[: self.settings.llm.max_sources]

    def nearest_papers(self, vector, n: int) -> list[str]:
        """Ids of the n papers nearest to a vector by meaning, over the whole index (whatever the question's
        filters: a filter passing few papers would put any claim near them)."""
        return [pid for pid, _, _ in self.retriever.dense(vector, n * 3)][:n]

    def _tiny_model_policy(self, policy: str, tiny: str) -> bool:
        """An `auto` LLM policy resolves to its tiny-model choice for the bundled local models."""
        return policy == tiny or (policy == "auto" and self.llm.bundled)

    def _reads_chosen_only(self) -> bool:
        return self._tiny_model_policy(self.settings.llm.sources, "chosen")

    def _extractive_on_refusal(self) -> bool:
        return self._tiny_model_policy(self.settings.llm.on_refusal, "extractive")

    def _written(self, query: Query, sources: list[PaperEvidence], chosen: list[Judged], base: dict,
                 on_token: OnToken) -> Answer:
        from .generate import Writer, fell_back

        writer = Writer(self.llm, self.embedder, self.store, self.settings, self.nearest_papers)
        written = writer.write(query, sources, on_token)
        if written.text:
            return Answer(text=written.text, citations=written.citations, abstained=False, usage=written.usage,
                          verification=written.verification, **base)
        if written.refused and (not self._extractive_on_refusal() or not chosen):
            report = replace(written.verification, abstain_reason=AbstainReason.MODEL_REFUSED)
            return self._abstain(base, on_token, report, written.usage)
        if not chosen:  # nothing survived verification and the offline composer has nothing either
            report = replace(fell_back(written), abstain_reason=AbstainReason.NO_SUPPORT)
            return self._abstain(base, on_token, report, written.usage)
        return self._extractive(query, chosen, base, on_token, verification=fell_back(written), usage=written.usage)


def _names_apart(query: Query, evidence: list[PaperEvidence]) -> bool:
    """A one-paper question naming things no retrieved paper holds together, though each is held by some paper
    ("the LoRA paper's rank when adapting GPT-3": papers hold LoRA, others GPT-3): a combination the corpus does
    not have."""
    if query.intent is Intent.COMPARE or query.focus:
        return False
    evidence = evidence[:NAMES_POOL]
    named = frozenset().union(*(pe.anchors_held for pe in evidence)) if evidence else frozenset()
    return len(named) >= 2 and not any(named <= pe.anchors_held for pe in evidence)


def _single_answer(pe: PaperEvidence, max_sentences: int) -> tuple[str, list[Citation]]:
    """The paper's shown sentences (the best, then what each adds), in the abstract's order."""
    picked = sorted(pe.shown[:max_sentences], key=lambda e: e.start)
    body = " ".join(attach_marker(defang(e.text), "[1]") for e in picked)
    text = f"From \u201c{defang(pe.hit.paper.title)}\u201d [1]: {body}"
    return text, [Citation(number=1, paper_id=pe.paper_id, title=pe.hit.paper.title, quote=pe.sentences[0].text)]


def _list_answer(papers: list[PaperEvidence]) -> tuple[str, list[Citation]]:
    one = len(papers) == 1
    lines = [f"{len(papers)} paper{'' if one else 's'} in the corpus bear{'s' if one else ''} on this:"]
    citations = []
    for n, pe in enumerate(papers, 1):
        best = pe.sentences[0]
        citations.append(Citation(number=n, paper_id=pe.paper_id, title=pe.hit.paper.title, quote=best.text))
        lines.append(f"- {defang(pe.hit.paper.title)} [{n}]: {defang(best.text)}")
    return "\n".join(lines), citations


def _compare_answer(query: Query, papers: list[PaperEvidence], per_paper: int) -> tuple[str, list[Citation]]:
    """Each paper's own fact, quoted and cited, then a comparison only when the two facts are comparable."""
    parts, citations = [], []
    for n, pe in enumerate(papers, 1):
        best = pe.sentences[0]
        citations.append(Citation(number=n, paper_id=pe.paper_id, title=pe.hit.paper.title, quote=best.text))
        quoted = sorted(pe.shown[:per_paper], key=lambda e: e.start)
        body = " ".join(attach_marker(defang(e.text), f"[{n}]") for e in quoted)
        parts.append(f"\u201c{defang(pe.hit.paper.title)}\u201d [{n}]: {body}")
    conclusion = compare_sentence(query, [(pe.hit.paper.title, pe.sentences[0].text) for pe in papers])
    return "\n".join(parts + ([conclusion] if conclusion else [])), citations
