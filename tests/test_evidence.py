from rag.evidence import TermWeights, answer_type, content_terms, split_sentences


def test_sentence_split_keeps_abbreviations_and_decimals_together():
    text = ("We train e.g. ResNets et al. on data. The method is 4.5x faster (wall-clock time). "
            "Fig. 2 shows it. Results hold, i.e. always! Is it? Yes.")
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == ["We train e.g. ResNets et al. on data.", "The method is 4.5x faster (wall-clock time).",
                         "Fig. 2 shows it.", "Results hold, i.e. always!", "Is it?", "Yes."]


def test_spans_cover_real_abstract(papers_by_title):
    abstract = papers_by_title["A Multigrid Method for Efficiently Training Video Models"].abstract
    spans = split_sentences(abstract)
    assert len(spans) == 12
    assert any("4.5x faster" in abstract[s:e] for s, e in spans)
    assert all(abstract[s:e] == abstract[s:e].strip() for s, e in spans)


def test_content_terms_drop_question_boilerplate():
    assert content_terms("Which papers propose a method for grokking?", question=True) == ["grokk"]
    assert "method" in content_terms("a method for grokking")


def test_coverage_weighs_rare_terms_more():
    weights = TermWeights.from_texts(["deep learning models", "deep nets", "deep grokking study"])
    q = content_terms("deep grokking", question=True)
    assert weights.coverage(q, {"grokk"}) > weights.coverage(q, {"deep"}) > 0
    assert weights.coverage(q, set()) == 0
    assert weights.coverage(content_terms("blockchain consensus", question=True), {"consensus"}) < 0.6


def test_answer_types():
    assert answer_type("By how much does it speed up training?") == "quantity"
    assert answer_type("What ROC-AUC does it reach?") == "quantity"
    assert answer_type("What is the name of the benchmark?") == "name"
    assert answer_type("Why does it fail?") == "other"


def test_selection_prefers_the_sentence_with_the_answer(small_assistant):
    question = "By how much does the multigrid schedule speed up SlowFast training?"
    hits = small_assistant.search(question, 3)
    evidence = small_assistant.chain.selector.select(question, hits, 3)
    top = evidence[0]
    assert top.hit.paper.title == "A Multigrid Method for Efficiently Training Video Models"
    assert "4.5x" in top.sentences[0].text
    paper = top.hit.paper
    for e in top.sentences:
        assert paper.abstract[e.start:e.end] == e.text
    assert top.support > evidence[1].support
