import pytest

from rag.citations import StreamVerifier, Verifier, figures, parse_markers, split_claims, strip_markers
from rag.prompts import REFUSAL


def test_marker_parsing():
    assert parse_markers("a [1] b [2, 3] c [4-6] d [2]") == [1, 2, 3, 4, 5, 6]
    assert parse_markers("no markers") == []
    assert strip_markers("It is 4.5x faster [1].") == "It is 4.5x faster."


def test_claims_keep_trailing_markers():
    assert split_claims("A is fast. [1] B is slow. [2][3]\n- C holds [1, 2].") == [
        "A is fast [1].", "B is slow [2][3].", "- C holds [1, 2]."]


@pytest.fixture()
def verifier(small_assistant, papers_by_title):
    numbered = {1: papers_by_title["A Multigrid Method for Efficiently Training Video Models"],
                2: papers_by_title["Memorizing Transformers"]}
    return Verifier(numbered, small_assistant.embedder, small_assistant.index.store)


def test_supported_sentence_keeps_its_citation_with_a_verbatim_quote(verifier, papers_by_title):
    out = verifier.add("The multigrid method trains a ResNet-50 SlowFast network 4.5x faster [1].")
    assert out == "The multigrid method trains a ResNet-50 SlowFast network 4.5x faster [1]."
    [citation] = verifier.citations({p.id: p for p in verifier.numbered.values()})
    paper = papers_by_title["A Multigrid Method for Efficiently Training Video Models"]
    assert citation.paper_id == paper.id and "4.5x" in citation.quote and citation.quote in paper.abstract


def test_a_plural_of_a_digit_name_is_that_name_and_a_changed_one_is_not(verifier):
    assert verifier.add("The multigrid method trains ResNet-50s with SlowFast 4.5x faster [1].") is not None
    # 128 is in the abstract ("128 GPUs"): only the name check can remove ResNet-128s
    assert "128" in verifier.numbered[1].abstract
    assert verifier.add("The multigrid method trains ResNet-128s with SlowFast 4.5x faster [1].") is None


def test_figures_read_a_relation_that_lost_its_backslash_as_numbers():
    assert "5" in figures("for design dimensions ge5 a constant mean")  # "\ge 5" with the backslash lost
    assert {"l1", "l2"} <= figures("neither minimum ell_1 or ell_2 norm interpolator")  # "\ell_1"
    assert figures("GPT-4 and FPR95") >= {"gpt4", "fpr95"}  # names stay names


def test_invented_number_and_unknown_citation_are_removed(verifier):
    assert verifier.add("The multigrid method trains SlowFast 12x faster [1].") is None
    assert verifier.add("Memory of recent key-value pairs improves language modeling [7].") is not None
    assert verifier.dropped_citations == 2  # the unsupported [1] and the invented [7]
    assert verifier.removed_sentences == 1
    assert verifier.reattributed == 1  # the [7] claim is supported by source 2


def test_wrong_source_is_reattributed_and_numbers_are_ours(verifier):
    out = verifier.add("Performance improves as the memory grows up to 262K tokens [1].")
    assert out == "Performance improves as the memory grows up to 262K tokens [1]."
    assert verifier.order == [verifier.numbered[2].id]  # shown as [1], the paper is Memorizing Transformers


def test_unsupported_claim_is_dropped_and_refusal_noted(verifier):
    assert verifier.add("The capital of France is Paris [1].") is None
    assert verifier.add(REFUSAL) is None
    assert verifier.model_refused


def streamed(verifier, text: str, step: int) -> str:
    """What a StreamVerifier emits when `text` arrives in tokens of `step` characters."""
    shown = []
    stream = StreamVerifier(verifier, emit=shown.append)
    for i in range(0, len(text), step):
        stream.feed(text[i:i + step])
    stream.finish()
    return "".join(shown)


def test_stream_emits_only_verified_sentences(verifier):
    text = "Paris is the capital of France. [2] The multigrid method is 4.5x faster [1]. Done"
    assert streamed(verifier, text, 3) == "The multigrid method is 4.5x faster [1]."


def test_a_bare_reply_stands_or_falls_with_the_claim_after_it(verifier):
    assert split_claims("Yes [1]. It trains 4.5x faster [1]. No. Both do.") == [
        "Yes [1]. It trains 4.5x faster [1].", "No. Both do."]
    shown = streamed(verifier, "Yes. The multigrid method is 4.5x faster [1]. No. The multigrid method is 12x "
                               "faster [1]. Done", 4)
    assert shown.startswith("Yes. The multigrid method is 4.5x faster")
    assert "No." not in shown and "12x" not in shown


@pytest.fixture()
def two_gains(small_assistant, papers_by_title):
    """A factor (4.5x faster training) and a percentage (FPR down 18.03%): two ways of stating a gain."""
    numbered = {1: papers_by_title["A Multigrid Method for Efficiently Training Video Models"],
                2: papers_by_title["Energy-based Out-of-distribution Detection"]}
    v = Verifier(numbered, small_assistant.embedder, small_assistant.index.store)
    assert v.add("The multigrid method trains a ResNet-50 SlowFast network 4.5x faster [1].")
    assert v.add("The energy score reduces the average FPR by 18.03% compared to the softmax confidence score [2].")
    return v


def test_a_comparative_over_a_factor_and_a_percentage_is_checked_as_relative_gains(two_gains):
    # 4.5x is a 350-450% gain however a factor is read: larger than 18.03%, so only the right direction is kept
    assert two_gains.add("The multigrid method reports the smaller relative gain [1][2].") is None
    assert two_gains.add("The multigrid method reports the larger relative gain [1][2].") == (
        "The multigrid method reports the larger relative gain [1][2].")


def test_a_comparative_is_not_kept_when_the_reading_of_a_factor_decides_it(small_assistant, papers_by_title):
    numbered = {1: papers_by_title["A Multigrid Method for Efficiently Training Video Models"],
                2: papers_by_title["Energy-based Out-of-distribution Detection"]}
    v = Verifier(numbered, small_assistant.embedder, small_assistant.index.store)
    v.verified_figures = {numbered[1].id: [(1.5, "x")], numbered[2].id: [(80.0, "%")]}  # 50-150% vs 80%
    v.quotes = {numbered[1].id: "q1", numbered[2].id: "q2"}
    ids = [numbered[1].id, numbered[2].id]
    assert v._compares("The multigrid method reports the larger relative gain", ids) is None
    v.verified_figures[numbered[2].id] = [(30.0, "%")]  # 50-150% vs 30%: larger either way
    assert v._compares("The multigrid method reports the larger relative gain", ids)
    assert v._compares("The multigrid method reports the smaller relative gain", ids) is False


def test_a_streamed_quoted_title_with_a_question_mark_stays_one_sentence(verifier):
    # Streamed, "“… Method? A …" arrives before its closing quote: the stop must not be taken as a sentence end
    # (it was: the title's head became a claim of its own and the rest a fragment without its opening quote).
    text = ("“A Multigrid Method? Efficiently Training Video Models” trains a ResNet-50 SlowFast network 4.5x "
            "faster [1]. Done")
    shown = streamed(verifier, text, 3)
    assert shown == ("“A Multigrid Method? Efficiently Training Video Models” trains a ResNet-50 SlowFast network "
                     "4.5x faster [1].")



def test_a_quote_never_closed_holds_the_stream_then_splits_as_usual(verifier):
    text = "The multigrid method, “fast, is 4.5x faster [1]. Paris is the capital of France [2]. Done"
    assert streamed(verifier, text, 4) == "The multigrid method, “fast, is 4.5x faster [1]."


@pytest.fixture()
def two_grokking(small_assistant, papers_by_title):
    numbered = {1: papers_by_title["Grokfast: Accelerated Grokking by Amplifying Slow Gradients"],
                2: papers_by_title["Grokking at the Edge of Numerical Stability"],
                3: papers_by_title["Memorizing Transformers"]}
    return Verifier(numbered, small_assistant.embedder, small_assistant.index.store)


def test_a_connective_over_verified_sentences_is_kept_and_a_foreign_one_is_not(two_grokking):
    """A sentence tying together what the answer verified for each paper it cites ("Both …", "one …, the other …")
    is supported by no abstract sentence; it is kept when it restates those verified sentences, never when it
    cites a paper the answer has verified nothing for, and never when it says something else."""
    v = two_grokking
    assert v.add("Grokfast accelerates grokking by amplifying the slow-varying components of the gradients [1].")
    assert v.add("The other paper argues that grokking tasks without regularization push models to the edge of "
                 "numerical stability, causing Softmax Collapse [2].")
    connective = "One speeds grokking up with a filter on gradients, while the other removes the need for regularization"
    assert v.add(f"{connective} [1][2].") == f"{connective} [1][2]."
    assert v.add(f"{connective} [1][3].") is None  # nothing about source 3 was verified in this answer
    assert v.add("Both papers train recurrent networks on protein folding with reinforcement learning [1][2].") is None


def test_a_partner_that_adds_only_common_words_does_not_join_a_synthesis(two_grokking):
    """Memorizing Transformers' "up to 262K tokens" holds the claim's "up", a word a tenth of the abstracts use: it
    adds nothing the claim states, so the sentence is not kept as a synthesis of it with Grokfast."""
    claim = "Both papers study grokking, one speeding it up and one explaining it"
    assert two_grokking.add(f"{claim} [1][3].") is None


def test_a_conclusion_in_other_words_is_kept_when_its_papers_are_nearest_to_it(full_assistant):
    """A closing comparison drawn in other words than the answer's earlier sentences restates them weakly; it is
    kept when both cited papers are among the papers nearest to it by meaning in the whole index, and a conclusion
    about other papers (the swap evals/reference_llm.py makes) is not."""
    by_title = {p.title: p for p in full_assistant.index.store.iter_papers()}
    numbered = {1: by_title["Grokfast: Accelerated Grokking by Amplifying Slow Gradients"],
                2: by_title["Grokking at the Edge of Numerical Stability"]}
    conclusion = "Both therefore see delayed generalization as something that can be made to happen sooner [1][2]."
    shown = {}
    for near in (None, full_assistant.chain.nearest_papers):
        v = Verifier(numbered, full_assistant.embedder, full_assistant.index.store, near)
        assert v.add("Grokfast accelerates grokking by amplifying the slow-varying components of the gradients [1].")
        assert v.add("The other paper argues that grokking tasks without regularization push models to the edge of "
                     "numerical stability, causing Softmax Collapse [2].")
        shown[near is not None] = v.add(conclusion)
        assert v.add("Both therefore favour exploitation-heavy search [1][2].") is None
    assert shown == {False: None, True: conclusion}


def _verifier_for(assistant, *titles):
    by_title = {p.title: p for p in assistant.index.store.iter_papers()}
    numbered = {n: by_title[t] for n, t in enumerate(titles, 1)}
    return Verifier(numbered, assistant.embedder, assistant.index.store, assistant.chain.nearest_papers)


def test_a_contrast_is_kept_when_each_side_restates_its_own_paper(full_assistant, monkeypatch):
    """"A is about X, whereas B is about Y" restates neither paper's abstract as a whole; it is kept when each part
    restates what the answer verified for a different one of the two papers, and a contrast about two other
    papers, cited to these, is not."""
    import rag.citations as citations

    contrast = "D4RL is about learning from static data, whereas Meta-World is about breadth of tasks [1][2]."
    shown = {}
    for bar in (1.01, citations.CONTRAST_MIN):
        monkeypatch.setattr(citations, "CONTRAST_MIN", bar)
        v = _verifier_for(full_assistant, "D4RL: Datasets for Deep Data-Driven Reinforcement Learning",
                          "Meta-World: A Benchmark and Evaluation for Multi-Task and Meta Reinforcement Learning")
        assert v.add("D4RL provides benchmarks for offline reinforcement learning, with datasets collected by "
                     "hand-designed controllers, human demonstrators and mixtures of policies [1].")
        assert v.add("Meta-World is a simulated benchmark of 50 distinct robotic manipulation tasks for "
                     "meta-reinforcement learning and multi-task learning [2].")
        shown[bar] = v.add(contrast)
        assert v.add("TOFU offers a dataset benchmark, whereas the WHP paper offers criteria plus a new method "
                     "[1][2].") is None
        assert v.add("D4RL is about breadth of tasks, whereas Meta-World is about learning from static data "
                     "[1][2].") is None  # each side said of the other paper
    assert shown == {1.01: None, citations.CONTRAST_MIN: contrast}


def test_a_comparative_may_name_a_paper_as_the_answer_did(full_assistant):
    """"AbeT reports the larger reduction" names the paper by the name the answer's own verified sentence gave it
    (the index holds no such name); the verified figures decide whether it is true."""
    kept = {}
    conclusions = ("AbeT reports the larger reduction [1][2].", "DOS reports the larger reduction [1][2].",
                   "On FPR95, AbeT reports the larger reduction [1][2].")  # a metric named first names no paper
    for conclusion in conclusions:
        v = _verifier_for(full_assistant, "DOS: Diverse Outlier Sampling for Out-of-Distribution Detection",
                          "Out-of-Distribution Detection & Applications With Ablated Learned Temperature Energy")
        assert v.add("DOS cuts the average FPR95 by up to 25.79% on CIFAR-100 [1].")
        assert v.add("AbeT reduces FPR@95 by 35.39% in classification compared with the state of the art [2].")
        kept[conclusion] = v.add(conclusion) is not None
    assert list(kept.values()) == [True, False, True]


def test_a_comparative_names_a_paper_by_a_rare_word_of_its_title_not_a_common_one(full_assistant):
    """"The temperature paper" names the one compared paper whose title has that word; "the learning paper" names
    none, though only one of the two titles says "Learned": a word more than 1 in 12 abstracts use names nothing, and
    a comparative about another pair of papers ("The factual-knowledge paper finds that larger batch sizes ...")
    would otherwise find its subject in one."""
    verdicts = {}
    for subject in ("temperature", "outlier sampling", "learning"):
        v = _verifier_for(full_assistant, "DOS: Diverse Outlier Sampling for Out-of-Distribution Detection",
                          "Out-of-Distribution Detection & Applications With Ablated Learned Temperature Energy")
        assert v.add("DOS cuts the average FPR95 by up to 25.79% on CIFAR-100 [1].")
        assert v.add("AbeT reduces FPR@95 by 35.39% in classification compared with the state of the art [2].")
        verdicts[subject] = v._compares(f"The {subject} paper reports the larger reduction.",
                                        [p.id for p in v.numbered.values()])
    assert verdicts == {"temperature": True, "outlier sampling": False, "learning": None}


def test_a_comparative_may_name_a_paper_by_what_its_abstract_coins(full_assistant, monkeypatch):
    """"NATURAL INSTRUCTIONS covers more tasks" names the paper whose abstract coins NATURAL INSTRUCTIONS ("we
    introduce NATURAL INSTRUCTIONS, a dataset of …"), though its title says "Natural Language Crowdsourcing
    Instructions" and the other paper's title also says "Natural Language"; the verified counts (61 and 24 tasks)
    then decide. Without the abstract's coined name the comparative names no paper and is dropped."""
    import rag.citations as citations

    kept = {}
    for coins in (True, False):
        if not coins:
            monkeypatch.setattr(citations, "coined_in", lambda abstract: [])
        for conclusion in ("NATURAL INSTRUCTIONS covers more tasks [1][2].",
                           "NATURAL INSTRUCTIONS covers fewer tasks [1][2]."):
            v = _verifier_for(full_assistant,
                              "Cross-Task Generalization via Natural Language Crowdsourcing Instructions",
                              "Instruction Induction: From Few Examples to Natural Language Task Descriptions")
            assert v.add("NATURAL INSTRUCTIONS contains 61 distinct tasks with their human-authored instructions [1].")
            assert v.add("The instruction induction challenge compiles a dataset of 24 tasks [2].")
            kept[coins, conclusion.split()[3]] = v.add(conclusion) is not None
    assert kept == {(True, "more"): True, (True, "fewer"): False, (False, "more"): False, (False, "fewer"): False}


def test_a_sentence_tried_on_a_fork_leaves_the_answer_as_it_was(verifier):
    """evals/reference_llm.py --swaps tries thousands of conclusions after one answer: each on a fork."""
    assert verifier.add("The multigrid method trains a ResNet-50 SlowFast network 4.5x faster [1].")
    tried = verifier.fork()
    assert tried.add("Memorizing Transformers extend language models with a memory of past inputs [2].")
    assert tried.add("The multigrid method improves accuracy by 0.8% on Kinetics-400 [1].")
    first, second = verifier.numbered[1].id, verifier.numbered[2].id
    assert len(tried.kept) == 3 and tried.order == [first, second] and set(tried._said) == {first, second}
    assert len(tried._said[first]) == len(tried._alone[first]) == 2 and len(tried.verified_figures[first]) == 4
    assert len(verifier.kept) == 1 and verifier.order == [first] and set(verifier._said) == {first}
    assert len(verifier._said[first]) == len(verifier._alone[first]) == 1
    assert verifier.verified_figures[first] == [(50.0, ""), (4.5, "x")]  # ResNet-50's 50, and 4.5x
    assert set(verifier.quotes) == set(verifier._alone) == set(verifier._own_names) == {first}
