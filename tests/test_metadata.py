"""Records that carry authors, dates and categories (JSONL, as users' own files do): metadata questions are
answered from them, and search/ask accept filters; a filter no paper passes says so."""
import json
import subprocess
import sys

import pytest

from conftest import make_settings
from rag.assistant import Assistant
from rag.errors import NoMatchingPapersError
from rag.types import Filters

RECORDS = [  # real abstracts from the bundled corpus; the metadata is the test's own
    ("Grokfast: Accelerated Grokking by Amplifying Slow Gradients", ["Ada Lovelace", "Alan Turing"], "2024-05-30", ["cs.LG"]),
    ("Grokking at the Edge of Numerical Stability", ["Grace Hopper"], "2025-01-08", ["cs.LG"]),
    ("Explaining grokking through circuit efficiency", ["Alan Turing", "Emmy Noether"], "2023-09-05", ["cs.LG"]),
    ("A Multigrid Method for Efficiently Training Video Models", ["Emmy Noether"], "2019-12-02", ["cs.CV"]),
    ("DEUP: Direct Epistemic Uncertainty Prediction", ["Ada Lovelace"], "2021-02-16", ["cs.LG", "stat.ML"]),
    ("Memorizing Transformers", ["Grace Hopper", "Alan Turing"], "2022-03-16", ["cs.CL"]),
]


@pytest.fixture(scope="module")
def meta_assistant(tmp_path_factory, papers_by_title):
    d = tmp_path_factory.mktemp("meta_corpus")
    lines = [json.dumps({"id": f"m-{n}", "title": t, "abstract": papers_by_title[t].abstract, "authors": authors,
                         "published": date, "categories": " ".join(cats)})
             for n, (t, authors, date, cats) in enumerate(RECORDS)]
    (d / "papers.jsonl").write_text("\n".join(lines) + "\n")
    assistant = Assistant(make_settings(tmp_path_factory.mktemp("meta_index")), build_if_missing=False)
    assistant.ingest([d])
    yield assistant
    assistant.close()


def test_authors_and_dates_are_answered_from_the_records(meta_assistant):
    answer = meta_assistant.ask("Who are the authors of Memorizing Transformers?")
    assert not answer.abstained and "Grace Hopper" in answer.text and "Alan Turing" in answer.text
    assert [c.paper_id for c in answer.citations] == ["m-5"]
    answer = meta_assistant.ask("When was DEUP published?")
    assert "2021-02-16" in answer.text and answer.citations[0].paper_id == "m-4"


def test_filters_restrict_search_and_answers(meta_assistant):
    hits = meta_assistant.search("grokking", 5, filters=Filters(since="2024"))
    assert {h.paper_id for h in hits} == {"m-0", "m-1"}
    answer = meta_assistant.ask("What is grokking?", filters=Filters(until="2023-12", category="cs.LG"))
    assert {c.paper_id for c in answer.citations} <= {"m-2", "m-4"}
    assert {h.paper_id for h in answer.sources} <= {"m-2", "m-4"}
    with pytest.raises(NoMatchingPapersError, match="author 'Nobody'"):
        meta_assistant.search("grokking", 5, filters=Filters(author="Nobody"))


def test_metadata_stated_in_the_question_is_a_filter(meta_assistant):
    answer = meta_assistant.ask("Which papers by Alan Turing are in the collection?")
    assert {c.paper_id for c in answer.citations} == {"m-0", "m-2", "m-5"}
    assert any("author 'Alan Turing'" in w for w in answer.warnings)
    answer = meta_assistant.ask("Which papers on grokking were published since 2024?")
    assert {c.paper_id for c in answer.citations} <= {"m-0", "m-1"} and answer.citations
    # judged on its topic (the year is in no abstract: counted as part of the topic, it rated the filtered pool's
    # grokking papers off the question), while the question itself, as a model would be asked it, is not rewritten
    assert answer.standalone_question == ""
    answer = meta_assistant.ask("Which papers by Alan Turing are on grokking?")  # was declined: "Turing" no abstract has
    assert {c.paper_id for c in answer.citations} <= {"m-0", "m-2"} and answer.citations


def test_the_metadata_a_question_states_is_left_out_of_its_topic():
    from rag.metadata import without_metadata

    assert without_metadata("Papers from 2021 to 2023 on RL by Grace Hopper?",
                            Filters(since="2021", until="2023", author="Grace Hopper")) == "Papers on RL?"
    assert without_metadata("What did Hinton publish in 2020?", Filters(since="2020", until="2020")) == \
        "What did Hinton publish?"
    assert without_metadata("Which papers by Alan Turing are on grokking?", Filters(author="Alan Turing")) == \
        "Which papers are on grokking?"
    assert without_metadata("GPT-2 since 2019?", Filters()) == "GPT-2 since 2019?"  # no filter read: unchanged
    # only the phrases the filters were read from go, as whole words
    assert without_metadata("Papers by Adam on Adam optimizer variants", Filters(author="Adam")) == \
        "Papers on Adam optimizer variants"
    assert without_metadata("Yangtze river data by Yang", Filters(author="Yang")) == "Yangtze river data"
    assert without_metadata("By Alan Turing, what is grokking?", Filters(author="Alan Turing")) == "what is grokking?"
    assert without_metadata("Papers since 2022 citing work from 2019", Filters(since="2022")) == \
        "Papers citing work from 2019"


def test_cli_filters(meta_assistant):
    index = str(meta_assistant.settings.index.dir)
    out = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", index, "search", "grokking", "--json",
                          "--author", "Hopper"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert {h["paper_id"] for h in json.loads(out.stdout)} == {"m-1", "m-5"}
    bad = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", index, "ask", "grokking", "--since",
                          "1999"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 0  # every paper is newer than 1999: nothing to refuse
    none = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", index, "ask", "grokking", "--since",
                           "2030"], capture_output=True, text=True, timeout=120)
    assert none.returncode == 1 and "no paper in the index passes the filters (since '2030')" in none.stderr
    wrong = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", index, "ask", "grokking", "--since",
                            "last year"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "not a date like 2023" in wrong.stderr
