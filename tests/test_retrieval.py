import sqlite3

from rag.config import RetrievalSettings
from rag.index import names, store
from rag.retrieval import fuse


def test_acronym_question_finds_its_paper_first(small_assistant):
    hits = small_assistant.search("What is DEUP?", 5)
    assert hits[0].paper.title == "DEUP: Direct Epistemic Uncertainty Prediction"
    assert hits[0].title_match and hits[0].bm25_score and hits[0].bm25_score > 0


def test_paraphrase_is_found_by_the_hybrid_ranking(small_assistant):
    hits = small_assistant.search("how much faster can SlowFast video models be trained with variable mini-batch shapes", 3)
    assert hits[0].paper.title == "A Multigrid Method for Efficiently Training Video Models"
    assert hits[0].dense_score > 0.5
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].snippet and hits[0].snippet in hits[0].paper.abstract


def test_results_are_one_hit_per_paper(small_assistant):
    hits = small_assistant.search("grokking delayed generalization", 10)
    ids = [h.paper_id for h in hits]
    assert len(ids) == len(set(ids))
    assert {"Grokfast: Accelerated Grokking by Amplifying Slow Gradients", "Grokking at the Edge of Numerical Stability",
            "Explaining grokking through circuit efficiency"} <= {h.paper.title for h in hits[:3]}


def test_rrf_fusion_by_hand():
    settings = RetrievalSettings(rrf_k=60, dense_weight=1.0, bm25_weight=1.0, title_weight=1.0)
    dense = [("a", 0.9, "a#0"), ("b", 0.8, "b#1")]
    bm25 = [("b", 7.0), ("c", 3.0)]
    fused = {pid: score for pid, score, _ in fuse(dense, bm25, ["c"], settings)}
    assert abs(fused["a"] - 1 / 61) < 1e-12
    assert abs(fused["b"] - (1 / 62 + 1 / 61)) < 1e-12
    assert abs(fused["c"] - (1 / 62 + 1 / 61)) < 1e-12
    assert [pid for pid, _, _ in fuse(dense, bm25, [], settings)] == ["b", "a", "c"]


def test_name_index_names_unknown_titles_and_abbreviations(papers_by_title):
    db = sqlite3.connect(":memory:")
    db.executescript(store.SCHEMA)  # as in the index: the names tables beside the papers table they index
    db.executemany("INSERT INTO papers (id, title, abstract, hash, n_chunks) VALUES (?, ?, ?, '', 0)",
                   [(p.id, p.title, p.abstract) for p in papers_by_title.values()])
    names.write_names(db, list(papers_by_title.values()))
    index = names.NameIndex(db)
    deup = papers_by_title["DEUP: Direct Epistemic Uncertainty Prediction"].id
    assert index.match("what is deup?") == [deup]
    assert index.match("How does ImageNet accuracy change?") == []  # a dataset named in titles is not a paper's name
    # a title's opening words written as a title name the paper when no other title opens with them; written
    # in lower case they are just words
    spec = papers_by_title["Effective Reward Specification in Deep Reinforcement Learning"].id
    assert index.match("What does Effective Reward Specification target?") == [spec]
    assert index.match("what does effective reward specification target?") == []
    # an abbreviation one paper defines names it (FIND, though "find" is a common word); one that a few papers
    # define but many write (AI) names none
    find = papers_by_title["A Function Interpretation Benchmark for Evaluating Interpretability Methods"].id
    assert index.papers_defining("What does FIND stand for?") == [find]
    assert db.execute("SELECT COUNT(*) FROM aliases WHERE short = 'ai'").fetchone()[0] >= 1
    assert index.papers_defining("How can AI help with this?") == []
    # one that few papers define and write, but whose long form many write (NNs: "neural networks"), is the
    # field's word, not a paper's name
    assert db.execute("SELECT COUNT(*) FROM aliases WHERE short = 'nn'").fetchone()[0] >= 1
    assert db.execute("SELECT COUNT(*) FROM capitals WHERE token = 'nn'").fetchone()[0] <= names.MAX_PAPERS_PER_NAME
    assert index.papers_defining("How flexible are NNs in practice?") == []
    assert index.names_unknown_paper("What BLEU did Attention Is All You Need report?") == "Attention Is All You Need"
    assert index.names_unknown_paper("What does Dropout Reduces Underfitting propose?") is None
    # a title written with an abbreviation the corpus defines is the title spelled out, not an unknown paper
    assert "reinforcement learning" in index.expansions(["rl"])["rl"]
    assert index.names_unknown_paper("What does Reward Design for RL Agents argue?") is None
    assert index.names_unknown_paper("What does Reward Design for Chess Agents argue?") == "Reward Design for Chess Agents"
    assert "direct epistemic uncertainty prediction" in index.expansions(["deup"])["deup"]
    assert "deup" in index.abbreviations_of(["direct epistemic uncertainty prediction"])[
        "direct epistemic uncertainty prediction"]
    # an abbreviation an abstract defines after its long form in words ("…, referred to as LBSF") names its paper
    lbsf = papers_by_title["Financial Risk Assessment via Long-term Payment Behavior Sequence Folding"].id
    assert index.papers_defining("What does LBSF stand for?") == [lbsf]
    # a title quoted after "according to" is read from its first capital; a phrase the question defines as a long
    # form names a method, not a missing paper; one only the corpus defines (BDP) may still be a missing title
    assert index.names_unknown_paper("According to A Generalization Theory for Zero-Shot Prediction, what "
                                     "enables zero-shot generalization?") is None
    assert index.names_unknown_paper("According to A Generalization Theory for Poker Bots, what helps?") == \
        "A Generalization Theory for Poker Bots"
    assert index.names_unknown_paper("How is Contrastive Predictive Coding (CPC) used for offline RL?") is None
    assert index.names_unknown_paper("How is Contrastive Predictive Coding used for offline RL?") == \
        "Contrastive Predictive Coding"
    assert index.names_unknown_paper("According to Behavior Diversity Play, what helps?") == "Behavior Diversity Play"


def test_abbreviation_definitions_are_found():
    found = names.abbreviations("We use reinforcement learning from human feedback (RLHF) and graph neural "
                                "networks (GNNs), unlike Vision Transformers (ViT). See (Smith et al.) and (ABC).")
    assert ("rlhf", "reinforcement learning from human feedback") in found
    assert ("gnn", "graph neural networks") in found
    assert ("vit", "vision transformers") in found
    assert ("ood", "out of distribution") in names.abbreviations("Detecting out-of-distribution (OOD) inputs.")
    # word initials that spell the short form win over the letters rule, which stops at "policy optimization" (the
    # p inside "Optimization"); a linking word is skipped only when the initials do not spell it without skipping
    assert names.abbreviations("We fine-tune with Proximal Policy Optimization (PPO).") == {
        ("ppo", "proximal policy optimization")}
    assert names.abbreviations("We train it from in-distribution (ID) data.") == {("id", "in distribution")}
    assert names.abbreviations("We use reinforcement learning from human feedback (RLHF).") == {
        ("rlhf", "reinforcement learning from human feedback")}
    assert not any(short == "abc" for short, _ in found)
    # the short form first, and "…, or SHORT for short"; a parenthesis that is not exactly the long form, a named
    # method ("called SharpeRatio") and a long form holding the short itself are not definitions
    other_ways = names.abbreviations(
        "FIND (Function INterpretation and Description) is a suite. A method based on Leave-One-Out "
        "K-Nearest-Neighbor, or LOOK for short. Models like GPT (a strong baseline) and a metric, called SharpeRatio, "
        "in either OOD generalization or OOD detection.")
    assert ("find", "function interpretation and description") in other_ways
    assert ("look", "leave one out k nearest neighbor") in other_ways
    assert {short for short, _ in other_ways} == {"find", "look"}
    # "…, referred to as / denoted as / also known as SHORT": the long form ends on a word starting with the
    # (singular) short form's last letter, not on the noun it names ("method", "optimizer")
    in_words = names.abbreviations(
        "We propose a Long-term Payment Behavior Sequence Folding method, referred to as LBSF. A new unlearning "
        "algorithm, denoted as DUCK. We study tree search, also known as TS. A phenomenon known as reward hacking. "
        "We train a Generative Adversarial Network, or GANs for short. We use the Sharpness Aware Minimization "
        "optimizer, also known as SAM.")
    assert in_words == {("lbsf", "long term payment behavior sequence folding"), ("ts", "tree search"),
                        ("gan", "generative adversarial network"), ("sam", "sharpness aware minimization")}


def test_bm25_search_equals_bm25s_retrieval(small_assistant, papers_by_title):
    """Questions read bm25s's score matrix with numpy (no bm25s/scipy import); results must be bm25s's own."""
    import bm25s
    from bm25s.stopwords import STOPWORDS_EN

    from rag.index.lexical import BM25Index
    from rag.text import STOPWORDS, terms

    assert STOPWORDS == frozenset(STOPWORDS_EN)
    directory = small_assistant.settings.index.dir / "bm25"
    ours = BM25Index(directory)
    reference = bm25s.BM25.load(str(directory), show_progress=False)
    queries = [p.title for p in list(papers_by_title.values())[:40]] + [
        "grokking grokking slow gradients", "label noise robust training", "What is DEUP?", "zzzz unknown words"]
    for query in queries:
        got = ours.search(query, 5)
        tokens = [t for t in terms(query) if t in reference.vocab_dict]
        if not tokens:
            assert got == []
            continue
        docs, scores = reference.retrieve([tokens], k=5, show_progress=False, n_threads=1)
        expected = {(ours.ids[int(d)], round(float(s), 4)) for d, s in zip(docs[0], scores[0]) if s > 0}
        assert {(pid, round(s, 4)) for pid, s in got} == expected, query
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    allowed = set(ours.ids[:3])
    assert {pid for pid, _ in ours.search("learning", 10, allowed)} <= allowed


def _name_index(papers):
    """A name index over these papers in an in-memory store."""
    db = sqlite3.connect(":memory:")
    db.executescript(store.SCHEMA)
    db.executemany("INSERT INTO papers (id, title, abstract, hash, n_chunks) VALUES (?, ?, ?, '', 0)",
                   [(p.id, p.title, p.abstract) for p in papers])
    names.write_names(db, papers)
    return db, names.NameIndex(db)


def _forget(db, ids):
    """Delete papers and rebuild the phrase index from the papers table."""
    db.executemany("DELETE FROM papers WHERE id = ?", [(i,) for i in ids])
    db.execute("INSERT INTO paper_words (paper_words) VALUES ('rebuild')")


def test_only_the_definitions_whose_long_form_many_papers_write_name_no_paper():
    """GP is "genetic programming" in one abstract and "Gaussian process" in another; four more write Gaussian
    processes (plural). The widely written definition names no paper; the rare one still names its paper."""
    from rag.types import Paper

    papers = [Paper("gp-evo", "Evolving programs", "We study genetic programming (GP) for symbolic regression."),
              Paper("gp-bo", "Surrogates for search", "A Gaussian process (GP) models the objective.")]
    papers += [Paper(f"other{i}", f"Kernel paper {i}", f"We fit Gaussian processes to task {i}.") for i in range(4)]
    db, index = _name_index(papers)
    assert index.papers_defining("How is GP used here?") == ["gp-evo"]
    _forget(db, ["other0", "other1"])
    assert index.papers_defining("How is GP used here?") == ["gp-bo", "gp-evo"]  # three write it: a rare name


def test_a_short_name_many_papers_write_names_no_paper():
    """A title's short name that more than three papers write is the field's word or a plain one: "is it safe to
    …" does not name the SAFE paper, while a short name only its paper writes still does. A question writing the
    name still finds the paper by retrieval (not tested here: this is the name index alone)."""
    from rag.types import Paper

    papers = [Paper("safe", "SAFE: Sensitivity-Aware Features", "We detect objects with sensitivity-aware features."),
              Paper("deup", "DEUP: Direct Epistemic Uncertainty Prediction", "We predict epistemic uncertainty.")]
    papers += [Paper(f"other{i}", f"Control paper {i}", f"Our controller keeps robot {i} safe.") for i in range(4)]
    db, index = _name_index(papers)
    assert index.match("Is it safe to use warmup with Adam, and how does DEUP work?") == ["deup"]
    assert index.match("Is SAFE fast, and how does DEUP work?") == ["deup"]  # capitals do not help: five write it
    _forget(db, ["other0", "other1"])
    assert sorted(index.match("Is SAFE fast, and how does DEUP work?")) == ["deup", "safe"]  # three write it: rare


def test_a_name_written_as_a_plain_word_names_no_paper():
    """BEAT is a paper's name and "beat" a verb other abstracts use: "their models beat much bigger ones" does
    not name BEAT (it was answered as a comparison with it), while "BEAT" in capitals does, and a lower-case
    name no abstract uses as a word ("deup") still names its paper."""
    from rag.types import Paper

    papers = [Paper("beat", "BEAT: Balanced Frequency Adaptive Tuning", "We tune frequency components apart."),
              Paper("deup", "DEUP: Direct Epistemic Uncertainty Prediction", "We predict epistemic uncertainty."),
              Paper("icl", "Learning to learn in context", "Our small model can beat much larger models.")]
    db, index = _name_index(papers)
    assert index.match("Do their models beat much bigger ones?") == []
    assert index.match("How does BEAT tune frequencies?") == ["beat"]
    assert index.match("Does BEAT beat the baselines?") == ["beat"]  # written in capitals too: the name
    assert index.match("what does deup predict?") == ["deup"]
    _forget(db, ["icl"])
    assert index.match("Do their models beat much bigger ones?") == ["beat"]  # no abstract uses the word


def test_a_name_an_abstract_coins_names_its_paper():
    """SCoRe is in no title and defined as no abbreviation; its abstract coins it ("we develop … an approach,
    SCoRe, that …"). A question writing it names that paper, though many abstracts write the word "score"; a
    paper that only uses a name (DINOv2 as a teacher) is not named by it."""
    from rag.types import Paper

    papers = [Paper("score", "Training Language Models to Self-Correct",
                    "Self-correction is rare. To this end, we develop a multi-turn online reinforcement learning "
                    "(RL) approach, SCoRe, that improves self-correction."),
              Paper("student", "Distilling vision features", "We propose to distill a small student from DINOv2."),
              Paper("agent", "Sample-efficient control", "We propose XNet, which outperforms DQN, PPO, and SAC."),
              Paper("palm", "Prototype learning", "We introduce PALM, a prototype learner."),
              Paper("toolkit", "A toolkit", "We introduce MARL, a toolkit for agents."),
              Paper("survey", "A survey", "We review multi-agent reinforcement learning (MARL).")]
    papers += [Paper(f"other{i}", f"Metric paper {i}", f"Our score {i} ranks models.") for i in range(4)]
    db, index = _name_index(papers)
    assert index.match("SCoRe vs RISE: how does each teach self-correction?") == ["score"]
    assert index.match("What is the score of the best model?") == []
    assert index.match("What does DINOv2 teach the student?") == []  # used, not coined
    assert index.match("How good is PPO on control?") == []  # compared against, not coined
    assert index.match("How does XNet learn?") == ["agent"]
    assert index.match("How does PaLM reason?") == [] and index.match("How does PALM learn?") == ["palm"]
    assert index.papers_writing("What is MARL?") == []  # an abbreviation an abstract defines: not this rule's


def test_singular_and_plural_forms_follow_english_spelling():
    """A long form's last word is looked up singular and plural: "es" only after a sibilant, so "rat" is not read
    as "rates" (which would count every paper writing "learning rates" as writing the long form); where the
    ending does not tell, both readings are kept."""
    assert names._number_forms("rat") == {"rat", "rats"}
    assert {"rate", "rates"} <= names._number_forms("rates") and "rat" not in names._number_forms("rates")
    for word, other in (("process", "processes"), ("policy", "policies"), ("loss", "losses"), ("response", "responses"),
                        ("size", "sizes"), ("bias", "biases"), ("movie", "movies"), ("network", "networks")):
        assert other in names._number_forms(word) and word in names._number_forms(other), (word, other)
