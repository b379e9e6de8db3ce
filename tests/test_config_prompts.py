import pytest

from rag.config import load_settings
from rag.errors import ConfigError, PromptError
from rag.prompts import PLACEHOLDERS, REFUSAL, load_prompt


def test_defaults_toml_env_and_fixed_index_dir_name(tmp_path, monkeypatch):
    monkeypatch.delenv("RAG_INDEX_DIR", raising=False)
    toml = tmp_path / "rag.toml"
    toml.write_text('[retrieval]\ntop_k = 7\nrrf_k = 30\n[index]\ndir = "/from/toml"\n')
    s = load_settings(toml)
    assert (s.retrieval.top_k, s.retrieval.rrf_k, str(s.index.dir)) == (7, 30, "/from/toml")
    monkeypatch.setenv("RAG_RETRIEVAL__TOP_K", "9")
    monkeypatch.setenv("RAG_INDEX_DIR", "/from/env")
    s = load_settings(toml)
    assert (s.retrieval.top_k, s.retrieval.rrf_k, str(s.index.dir)) == (9, 30, "/from/env")
    s = load_settings(toml, retrieval={"top_k": 3})
    assert (s.retrieval.top_k, s.retrieval.rrf_k) == (3, 30)


def test_unknown_or_invalid_settings_are_named(tmp_path):
    toml = tmp_path / "rag.toml"
    toml.write_text("[answer]\nabstain_bellow = 0.3\n")
    with pytest.raises(ConfigError, match=r"answer\.abstain_bellow: Extra inputs"):
        load_settings(toml)
    toml.write_text("[retrieval]\ntop_k = 0\n")
    with pytest.raises(ConfigError, match=r"retrieval\.top_k"):
        load_settings(toml)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_every_field_is_described():
    from rag.config import Settings

    for group in Settings.model_fields.values():
        assert group.description
        for name, field in group.annotation.model_fields.items():
            assert field.description, name


def test_prompts_load_with_their_placeholders_and_share_the_refusal():
    for name in PLACEHOLDERS:
        prompt = load_prompt(name)
        assert prompt.fields == PLACEHOLDERS[name]
    system = load_prompt("answer_system").render(refusal=REFUSAL)
    assert REFUSAL in system and "{" not in system
    with pytest.raises(PromptError, match="needs values"):
        load_prompt("answer_user").render(question="q")


def test_a_prompt_file_missing_a_placeholder_is_refused_at_load(tmp_path):
    (tmp_path / "answer_user.txt").write_text("Question: {question}\nSources: {sources}\n")
    with pytest.raises(PromptError, match=r"missing \['evidence', 'refusal'\]; unknown \['sources'\]"):
        load_prompt("answer_user", tmp_path)
    with pytest.raises(PromptError, match="is missing"):
        load_prompt("condense", tmp_path)
