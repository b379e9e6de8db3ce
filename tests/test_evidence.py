import numpy as np

from rag.evidence import Probe, covering_order, relevance
from rag.text import split_sentences, states_quantity, terms
from rag.types import Evidence, Sentence


def test_sentence_split_keeps_abbreviations_and_decimals_together():
    text = ("We train e.g. ResNets et al. on data. The method is 4.5x faster (wall-clock time). "
            "Fig. 2 shows it. Results hold, i.e. always! Is it? Yes. Metrics (e.g. MMLU, GSM8k) and "
            "\u201ccf. Smith\u201d agree.")
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == ["We train e.g. ResNets et al. on data.", "The method is 4.5x faster (wall-clock time).",
                         "Fig. 2 shows it.", "Results hold, i.e. always!", "Is it?", "Yes.",
                         "Metrics (e.g. MMLU, GSM8k) and \u201ccf. Smith\u201d agree."]


def test_sentence_split_at_curly_quotes():
    """Answers quote titles in curly quotes and models copy it; a sentence opening with one is still a sentence."""
    text = ("It proposes metrics to analyze them. \u201cOn the interaction\u2026\u201d examines self-play. "
            "They call it \u2018S2P.\u2019 The last one ends here.")
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "It proposes metrics to analyze them.", "\u201cOn the interaction\u2026\u201d examines self-play.",
        "They call it \u2018S2P.\u2019", "The last one ends here."]
    # a title with a question mark inside its quotes is part of one sentence; a quote closed at the stop is not
    titled = ("\u201cWhat Algorithms can Transformers Learn? A\u2026\u201d proposes a conjecture. "
              "He said \u201cit works.\u201d Then it ran.")
    assert [titled[s:e] for s, e in split_sentences(titled)] == [
        "\u201cWhat Algorithms can Transformers Learn? A\u2026\u201d proposes a conjecture.",
        "He said \u201cit works.\u201d", "Then it ran."]


def test_spans_cover_real_abstract(papers_by_title):
    abstract = papers_by_title["A Multigrid Method for Efficiently Training Video Models"].abstract
    spans = split_sentences(abstract)
    assert len(spans) == 12
    assert any("4.5x faster" in abstract[s:e] for s, e in spans)
    assert all(abstract[s:e] == abstract[s:e].strip() for s, e in spans)


def test_terms_drop_question_boilerplate():
    assert terms("Which papers propose a method for grokking?", question=True) == ["grokk"]
    assert "method" in terms("a method for grokking")


def test_british_and_american_spellings_are_one_term():
    for british, american in (("optimisation", "optimization"), ("regularised", "regularized"), ("analyse", "analyze"),
                              ("behavioural", "behavioral"), ("colour", "color"), ("generalising", "generalizing")):
        assert terms(british) == terms(american), british
    assert terms("analysis") != terms("analyse")  # a noun ending in -sis is not a British verb
    assert terms("four hours") == ["four", "hour"]  # short words and other -our words are left alone


def test_an_abbreviations_plural_is_the_abbreviation():
    """The stemmer keeps "llms" (no vowel before the s), so without this "What is an LLM?" shares no term with an
    abstract about LLMs."""
    for plural, one in (("LLMs", "LLM"), ("N-LMRMs", "N-LMRM"), ("GPUs", "GPU"), ("ReLUs", "ReLU"), ("llms", "LLM"),
                        ("lstms", "LSTM")):
        assert terms(plural) == terms(one), plural
    assert terms("Is this as good") == terms("is this as good")  # a capitalised word ending in s is not a plural
    assert terms("Bias") == terms("bias") != terms("bia")  # one capital: an ordinary word, left to the stemmer
    assert terms("FocalLoss") == terms("focalloss")  # "ss" is not a plural


def test_coverage_weighs_rare_terms_more():
    probe = Probe(vector=np.zeros(2), terms=("deep", "grokk"), weights={"deep": 0.3, "grokk": 1.5})
    assert probe.coverage({"grokk"}) > probe.coverage({"deep"}) > 0
    assert probe.coverage(set()) == 0
    assert probe.coverage({"deep", "grokk"}) == 1
    assert relevance(1.0, 0.0) == relevance(0.0, 1.0) == 0.5


def test_selection_prefers_the_sentence_with_the_answer(small_assistant):
    question = "By how much does the multigrid schedule speed up SlowFast training?"
    chain = small_assistant.chain
    hits, evidence, _ = chain.gather(small_assistant.reader.read(question))
    top = evidence[0]
    assert top.hit.paper.title == "A Multigrid Method for Efficiently Training Video Models"
    assert any("4.5x" in e.text for e in top.sentences[:3])  # the extractive answer quotes the best three
    paper = top.hit.paper
    for e in top.sentences:
        assert paper.abstract[e.start:e.start + len(e.text)] == e.text
    assert top.support > evidence[1].support
    assert top.aspect_number > 0.3 and top.anchors_missing == 0


def test_the_next_sentences_are_picked_for_what_they_add_to_the_question():
    """A ranker scores sentences alone, so its top ones can all restate one part of a two-part question; the
    next picks weigh what each adds that those above it (and the title) do not cover."""
    probe = Probe(vector=np.zeros(3), terms=("vpt", "craft", "minecraft"), weights={"vpt": 1.0, "craft": 2.0,
                                                                                     "minecraft": 2.0})

    def evidence(index: int, score: float, *words: str) -> Evidence:
        return Evidence(Sentence("p", index, index, index + 1, " ".join(words), frozenset(words)), score)

    first, echo, crafting, crafted, named, other = (
        evidence(0, 5.0, "minecraft", "video"), evidence(1, 4.9, "minecraft"), evidence(2, 4.0, "craft", "diamond"),
        evidence(3, 3.9, "craft"), evidence(4, 3.5, "vpt"), evidence(5, 3.0, "robot"))
    ranked = [first, echo, crafting, crafted, named, other]
    # the second pick covers "craft"; then "craft" is covered, and the name adds what neither did
    assert covering_order(ranked, probe, frozenset(), 3) == [first, crafting, named, echo, crafted, other]
    # the title (shown with every answer) already says the name: the third pick goes by score
    assert covering_order(ranked, probe, frozenset({"vpt"}), 3) == [first, crafting, echo, crafted, named, other]
    # past the slots the ranker's order stands
    assert covering_order(ranked, probe, frozenset(), 1) == ranked


def test_a_number_written_as_a_word_is_a_quantity():
    """The number guard abstains on a "how many" question whose shown sentences state no quantity; "we advocate for
    four properties" states one (the guard declined such answers), a digit inside a name does not, and "one" is as
    often a pronoun."""
    for text in ("We advocate for four properties.", "a four-stage roadmap", "hundreds of tasks", "It is 4.5x faster",
                 "trained on 128 GPUs"):
        assert states_quantity(text), text
    for text in ("GPT-4 is used as a judge", "one of the methods", "a twofold aim", "ResNet-50 backbones"):
        assert not states_quantity(text), text


def test_an_abbreviation_covers_only_the_probe_terms_it_stands_for():
    """A probe narrowed to what a question asks for ("what accuracy does LoRA reach?" asks for accuracy) is not
    covered by a sentence that spells out LoRA: the question's abbreviation is not what it asks for."""
    lora = (frozenset(terms("LoRA")), frozenset(terms("low-rank adaptation")))
    weights = {t: 1.0 for t in terms("accuracy LoRA")}
    asked = Probe(vector=np.zeros(3), terms=tuple(terms("accuracy")), weights=weights, equivalents=(lora,))
    whole = Probe(vector=np.zeros(3), terms=tuple(terms("accuracy LoRA")), weights=weights, equivalents=(lora,))
    sentence = set(terms("Low-rank adaptation cuts trainable parameters by 10,000 times"))
    assert asked.coverage(sentence) == 0.0
    assert whole.covered(sentence) == set(terms("LoRA"))
