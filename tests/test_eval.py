import json
from dataclasses import replace

import pytest

from rag.resources import checkout_root
from rag.text import SPLITTER_VERSION, TERMS_VERSION
from rag.corpus import read_corpus
from rag.errors import EvalFileError
from rag.eval import (
    EvalItem, RowResult, check_titles, citation_precision, citation_recall, fact_hit, load_eval_file, markdown_report,
    percentile, recall_at, reciprocal_rank, run_eval, summarize,
)

QA = checkout_root() / "evals" / "qa.jsonl"


def test_metric_functions_by_hand():
    expected = ["A", "B"]
    retrieved = ["x", "A", "y", "z", "w", "B"]
    assert recall_at(expected, retrieved, 1) == 0.0
    assert recall_at(expected, retrieved, 5) == 0.5
    assert recall_at(expected, retrieved, 10) == 1.0
    assert reciprocal_rank(expected, retrieved) == 0.5
    assert reciprocal_rank(expected, ["q"]) == 0.0
    assert citation_precision(expected, ["A", "x", "y"]) == pytest.approx(1 / 3)
    assert citation_precision(expected, []) is None
    assert citation_recall(expected, ["a"]) == 0.5  # titles compare case-insensitively
    assert fact_hit(["4.5", "SlowFast"], "trains slowfast 4.5x faster")
    assert not fact_hit(["4.5", "Kinetics"], "4.5x")
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)


def test_summary_by_hand():
    def row(kind, answerable, expected, cited, abstained, text="", must=(), intent=""):
        item = EvalItem(id=kind, question="q", expected_papers=tuple(expected), must_include=tuple(must),
                        answerable=answerable, kind=kind)
        return RowResult(item=item, answer_text=text, abstained=abstained, cited=cited,
                         retrieved=list(expected) + ["z"], latency=1.0, intent=intent)
    rows = [
        row("fact", True, ["A"], ["A", "B"], False, "it is 4.5x", ("4.5",), intent="definition"),
        row("fact", True, ["C"], [], True, "", ("9",), intent="compare"),
        row("unanswerable", False, [], [], True, intent="list"),
        row("unanswerable", False, [], ["D"], False),
    ]
    s = summarize(rows)
    assert s["n"] == 4 and s["recall@1"] == 1.0
    assert s["citation_precision"] == pytest.approx((0.5 + 0.0) / 2)  # the cited unanswerable item counts 0
    assert s["citation_recall"] == 0.5
    assert s["fact_hit"] == 0.5
    assert s["abstention_rate"] == 0.5 and s["false_abstention_rate"] == 0.5
    assert s["intent_accuracy"] == 0.5  # a fact read as a definition is right, as a comparison wrong; no expectation
    only_unanswerable = summarize(rows[2:])
    assert only_unanswerable["recall@5"] is None and only_unanswerable["fact_hit"] is None


def test_bundled_eval_set_is_well_formed_and_its_titles_exist():
    items = load_eval_file(QA)
    assert len(items) >= 300
    kinds = {"fact", "paraphrase", "acronym", "compare", "exhaustive", "followup", "metadata", "nearmiss", "offtopic",
             "unanswerable"}
    for kind in kinds:  # every kind on both sides of the split, and test at least 40% of the set
        assert {i.split for i in items if i.kind == kind} == {"dev", "test"}, kind
    assert sum(i.split == "test" for i in items) >= 0.4 * len(items)
    assert all(i.reference_answer for i in items if i.answerable)
    assert all(len(i.expected_papers) == 2 for i in items if i.kind == "compare")
    assert all(i.history for i in items if i.kind == "followup")
    papers = {p.title: p for p in read_corpus([checkout_root() / "data" / "corpus"]).papers}
    check_titles(items, set(papers))
    for item in items:  # every must_include fact is stated in an expected paper
        for fact in item.must_include:
            assert any(fact.casefold() in (papers[t].title + " " + papers[t].abstract).casefold()
                       for t in item.expected_papers), (item.id, fact)


@pytest.mark.parametrize("name", ["answerable_train", "compare_train", "negatives_dev", "lists_train", "lists_heldout",
                                  "answerable_heldout"])
def test_written_training_sets_are_dev_side_and_their_titles_exist(name):
    """The written sets beside dev (what evals/train.py learns from; lists_train, written for the list models; and
    lists_heldout and answerable_heldout, which nothing trains on): eval format, no test items, every title in the corpus, and complete
    lists with at least two papers (an empty one is a topic no paper covers, so not answerable)."""
    items = load_eval_file(checkout_root() / "evals" / f"{name}.jsonl")
    assert items and all(i.split != "test" for i in items)
    check_titles(items, {p.title for p in read_corpus([checkout_root() / "data" / "corpus"]).papers})
    for item in items:
        if item.kind == "exhaustive":
            assert item.answerable and len(item.expected_papers) >= 2, item.id
        assert item.answerable == bool(item.expected_papers), item.id
        assert item.answerable or item.kind in {"nearmiss", "offtopic", "unanswerable"}, item.id
    if name == "lists_train":  # no eval list, dev or test, is learned by heart
        eval_lists = [set(i.expected_papers) for i in load_eval_file(QA) if i.kind == "exhaustive"]
        for item in items:
            gold = set(item.expected_papers)
            assert not gold or max(len(gold & e) / len(gold | e) for e in eval_lists) < 0.4, item.id


@pytest.mark.parametrize("line, message", [
    ('{"id": "a", "question": "q"', "invalid JSON"),
    ('{"id": "a", "question": "q", "expected_papers": [], "must_include": [], "answerable": false}', "missing field 'kind'"),
    ('{"id": "a", "question": "q", "expected_papers": "T", "must_include": [], "answerable": true, "kind": "f"}',
     "'expected_papers' must be list"),
    ('{"id": "a", "question": "q", "expected_papers": [], "must_include": [], "answerable": true, "kind": "f"}',
     "must list expected_papers"),
    ('{"id": "a", "question": "q", "expected_papers": ["T"], "must_include": [], "answerable": true, "kind": "f", '
     '"history": [{"role": "bot", "content": "x"}]}', "'history'"),
])
def test_malformed_line_is_named(tmp_path, line, message):
    good = json.dumps({"id": "ok", "question": "q", "expected_papers": [], "must_include": [], "answerable": False,
                       "kind": "u"})
    path = tmp_path / "e.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(EvalFileError) as err:
        load_eval_file(path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_duplicate_ids_and_unknown_titles_are_errors(tmp_path, small_assistant):
    line = {"id": "x", "question": "q", "expected_papers": ["No Such Paper"], "must_include": [], "answerable": True,
            "kind": "f"}
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(EvalFileError, match="line 1"):
        load_eval_file(path)
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(EvalFileError, match="not in the index: line 1: 'No Such Paper'"):
        run_eval(small_assistant, load_eval_file(path))


def test_run_eval_on_small_index(tmp_path, small_assistant):
    lines = [
        {"id": "f", "question": "By how much does the multigrid schedule speed up SlowFast training?",
         "expected_papers": ["A Multigrid Method for Efficiently Training Video Models"], "must_include": ["4.5"],
         "answerable": True, "kind": "fact"},
        {"id": "c", "question": "What speedup did it report?",
         "expected_papers": ["A Multigrid Method for Efficiently Training Video Models"], "must_include": ["4.5"],
         "answerable": True, "kind": "followup",
         "history": [{"role": "user", "content": "Is there work on training video models with variable mini-batch shapes?"},
                     {"role": "assistant", "content": "Yes, the multigrid method."}]},
        {"id": "u", "question": "What does the corpus say about blockchain consensus?", "expected_papers": [],
         "must_include": [], "answerable": False, "kind": "unanswerable"},
    ]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = run_eval(small_assistant, load_eval_file(path))
    assert report["overall"]["n"] == 3
    # what the numbers depend on besides code: the index's embedding export and the runtime's versions and CPU
    assert len(report["index"]["embedding_digest"]) == 64 and report["index"]["papers"] == small_assistant.describe()["papers"]
    assert report["index"]["sentence_splitter"] == SPLITTER_VERSION and report["index"]["terms"] == TERMS_VERSION
    assert report["runtime"]["onnxruntime"][0].isdigit() and report["runtime"]["cpu_int8"]
    assert report["by_kind"]["fact"]["fact_hit"] == 1.0 and report["by_kind"]["followup"]["fact_hit"] == 1.0
    assert report["by_kind"]["unanswerable"]["abstention_rate"] == 1.0
    assert report["by_kind"]["unanswerable"]["recall@5"] is None
    rows = {r["id"]: r for r in report["rows"]}
    assert rows["f"]["failed"] == [] and rows["u"]["cited_titles"] == []
    assert set(rows["f"]) >= {"id", "kind", "question", "answer", "abstained", "cited_titles", "retrieved_titles", "failed"}
    table = markdown_report(report)
    assert "| **overall** | 3 |" in table and "| unanswerable | 1 |" in table


def test_reliability_bins_by_hand_and_plot(tmp_path, small_assistant):
    from rag.eval import EvalItem, RowResult, plot_report, reliability

    item = EvalItem(id="x", question="q", expected_papers=(), must_include=(), answerable=False, kind="fact")
    rows = [RowResult(item=item, answer_text="", abstained=False, cited=[], retrieved=[], latency=0.0,
                      confidence=c, candidate_correct=ok)
            for c, ok in ((0.05, False), (0.08, False), (0.92, True), (0.95, True), (0.97, False), (1.0, True))]
    curve = reliability(rows)
    assert curve["n"] == 6 and [b["n"] for b in curve["bins"]] == [2, 4]  # 1.0 falls in the top bin
    assert curve["bins"][0]["observed"] == 0.0 and curve["bins"][1]["observed"] == 0.75
    # ECE: (2*|0.065-0| + 4*|0.96-0.75|) / 6
    assert abs(curve["ece"] - (2 * 0.065 + 4 * 0.21) / 6) < 1e-3
    # A real run: answers carry the candidate and its confidence; the plot draws both panels
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps({"id": "f", "question": "By how much does the multigrid schedule speed up SlowFast "
                                "training?", "expected_papers": ["A Multigrid Method for Efficiently Training Video Models"],
                                "must_include": ["4.5"], "answerable": True, "kind": "fact"}) + "\n")
    report = run_eval(small_assistant, load_eval_file(path))
    row = report["rows"][0]
    assert row["candidate_correct"] is True and row["confidence"] > 0.5
    assert report["reliability"]["n"] == 1
    plot_report(report, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_typed_variants_ask_the_same_question_as_users_type_it():
    """evals/typed.py asks each question in lower case (earlier turns too) and with letter-digit names run together;
    an item a variant leaves as it is is not asked again."""
    import sys

    sys.path.insert(0, str(checkout_root() / "evals"))
    import typed

    item = EvalItem(id="x", question="Does GPT-4 beat Vicuna-13B on CIFAR-10 in the Pre-train paper?",
                    expected_papers=(), must_include=(), answerable=False, kind="unanswerable",
                    history=({"role": "user", "content": "Tell me about LoRA."},))
    lower = typed.typed(item, typed.VARIANTS["lower case"])
    assert lower.question == item.question.lower() and lower.history[0]["content"] == "tell me about lora."
    run_on = typed.typed(item, typed.VARIANTS["digits run on"])
    assert run_on.question == "Does GPT4 beat Vicuna13B on CIFAR10 in the Pre-train paper?"
    assert run_on.history == item.history and run_on.id == item.id
    assert typed.typed(replace(item, question="what is lora?", history=()), typed.VARIANTS["lower case"]) is None
    chat = typed.typed(item, typed.VARIANTS["in a chat wrapper"])
    assert item.question in chat.question and chat.question != item.question and chat.history == item.history
    assert chat == typed.typed(item, typed.VARIANTS["in a chat wrapper"])  # the same wrapper each run
