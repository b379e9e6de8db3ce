"""Question understanding with the shipped models: intents, answer types, follow-ups and metadata fields are read
from questions in wordings none of the training questions use verbatim."""
import pytest

from rag.query import EmptyQuestionError, clean_question, metadata_field
from rag.types import AnswerType, Intent, MetadataField

CASES = [
    ("Which papers study grokking?", Intent.LIST, None, False),
    ("List every work on federated learning.", Intent.LIST, None, False),
    ("Is there anything in the collection about protein design? Name all of it.", Intent.LIST, None, False),
    ("Compare DEUP and Grokfast: which one targets uncertainty?", Intent.COMPARE, None, False),
    ("Which is faster, multigrid training or one-epoch training?", Intent.COMPARE, None, False),
    ("Who are the authors of Memorizing Transformers?", Intent.METADATA, None, False),
    ("What is DEUP?", Intent.DEFINITION, None, False),
    ("By how much does the multigrid schedule speed up SlowFast training?", Intent.FACT, AnswerType.NUMBER, False),
    ("Which dataset does VPT use?", Intent.FACT, AnswerType.NAME, False),
    ("What speedup did it report?", Intent.FACT, AnswerType.NUMBER, True),
    ("Who wrote it?", Intent.METADATA, None, True),
]


@pytest.mark.parametrize("question, intent, answer_type, follow_up", CASES)
def test_reader_understands_varied_questions(small_assistant, question, intent, answer_type, follow_up):
    query = small_assistant.reader.read(question)
    assert query.intent is intent
    if answer_type is not None:
        assert query.answer_type is answer_type
    assert query.follow_up is follow_up
    assert query.vector is not None and abs(float(query.vector @ query.vector) - 1) < 1e-3


def test_metadata_fields():
    assert metadata_field("Who are the authors of DEUP?") is MetadataField.AUTHORS
    assert metadata_field("When was it published?") is MetadataField.DATE
    assert metadata_field("Which venue published the VPT paper?") is MetadataField.OTHER
    assert metadata_field("What arXiv category is it in?") is MetadataField.CATEGORY


def test_questions_are_cleaned_and_clipped():
    with pytest.raises(EmptyQuestionError):
        clean_question(" \n\t", 512)
    assert clean_question("  what   is\nDEUP? ", 512) == ("what is DEUP?", None)
    text, note = clean_question("word " * 2000, 512)
    assert note and "clipped to its first 512 tokens" in note and len(text.split()) < 600
