"""`rag chat` driven as a user would: piped input to a real process, and a pseudo-terminal."""
import os
import subprocess
import sys

SESSION = "\n".join([
    "Is there work on training video models faster with variable mini-batch shapes?",
    "What speedup did it report?",
    "/paper 1",
    "/sources",
    "/k 2",
    "/reset",
    "What speedup did it report?",
    "/bogus",
    "/quit",
    "never reached",
]) + "\n"


def _chat(small_assistant, stdin):
    env = {**os.environ, "RAG_INDEX_DIR": str(small_assistant.settings.index.dir), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "rag.cli", "chat"], input=stdin, env=env, capture_output=True,
                          text=True, timeout=300)


def test_piped_session(small_assistant):
    out = _chat(small_assistant, SESSION)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("rag chat — index") and "16 papers" in text and "extractive" in text
    turns = text.split("\n> ")
    assert turns[1].startswith("Is there work on training video models")
    follow_up = turns[2]
    assert follow_up.startswith("What speedup did it report?")
    assert "4.5x" in follow_up and "[1] A Multigrid Method for Efficiently Training Video Models" in follow_up
    paper = turns[3]
    assert paper.startswith("/paper 1") and "Code is available online." in paper  # the full abstract
    assert turns[4].startswith("/sources") and "A Multigrid Method" in turns[4]
    assert "Retrieving 2 papers" in turns[5]
    assert "Conversation forgotten." in turns[6]
    after_reset = turns[7]
    # the forgotten context is not reused silently: the user is told the follow-up has nothing to refer to
    assert "no earlier turn in this conversation" in after_reset
    assert "unknown command /bogus" in turns[8]
    assert "never reached" not in text


def test_ctrl_c_stops_an_answer_and_keeps_the_session(small_assistant):
    """Ctrl-C while a slow LLM endpoint (a real local server) is answering stops that answer only."""
    import pty
    import select
    import signal
    import time

    from llm_server import FakeOpenAIServer, Reply

    with FakeOpenAIServer() as server:
        server.replies.append(Reply("Too late.", delay=30))
        server.default = Reply("DEUP predicts epistemic uncertainty directly [1].")
        env = {**os.environ, "RAG_INDEX_DIR": str(small_assistant.settings.index.dir), "COLUMNS": "200"}
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(sys.executable, [sys.executable, "-m", "rag.cli", "chat", "--llm", server.url, "--model", "m",
                                       "--history-file", os.devnull], env)
        output = b""

        def read_until(marker: bytes, timeout: float = 120) -> bytes:
            nonlocal output
            deadline = time.monotonic() + timeout
            while marker not in output and time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if ready:
                    try:
                        output += os.read(fd, 65536)
                    except OSError:
                        break
            return output

        try:
            prompt = b"\x1b[?2004h"  # prompt_toolkit switches bracketed paste on when it waits for a line
            read_until(b"/help for commands")
            read_until(prompt)
            os.write(fd, b"What is DEUP?\r")
            deadline = time.monotonic() + 60
            while not server.requests and time.monotonic() < deadline:  # the answer is waiting on the slow server
                time.sleep(0.05)
            started = time.monotonic()
            os.kill(pid, signal.SIGINT)  # Ctrl-C (works even if this test run inherited SIGINT ignored)
            read_until(b"session goes on", 20)
            stopped_after = time.monotonic() - started
            mark = len(output)
            os.write(fd, b"What is DEUP?\r")
            read_until(b"References", 60)
            deadline = time.monotonic() + 30
            while prompt not in output[mark:].split(b"References", 1)[-1] and time.monotonic() < deadline:
                read_until(b"\x00", 0.2)
            os.write(fd, b"\x04")  # Ctrl-D leaves
            deadline = time.monotonic() + 30
            status = None
            while status is None and time.monotonic() < deadline:
                done, code = os.waitpid(pid, os.WNOHANG)
                status = code if done else None
                time.sleep(0.1)
            if status is None:
                os.kill(pid, signal.SIGKILL)
        finally:
            os.close(fd)
    text = output.decode(errors="replace")
    assert "session goes on" in text and stopped_after < 5, (status, len(server.requests), text[-600:])
    after = text.split("session goes on", 1)[1]
    assert "DEUP predicts epistemic uncertainty directly [1]." in after
    assert "DEUP: Direct Epistemic Uncertainty Prediction" in after
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
