"""`rag chat`: a REPL over `Assistant.chat()`. Line editing and history with prompt_toolkit on a terminal;
one question per line when input is piped, so sessions can be scripted and tested."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .config import Settings
from .errors import RagError
from .render import print_hits, print_references

HELP = """commands:
  /help        this help
  /sources     all papers retrieved for the last answer, with scores
  /paper N     full abstract of reference N of the last answer
  /reset       forget the conversation
  /k N         retrieve N papers per question
  /quit        leave (Ctrl-D too); Ctrl-C stops the current answer"""


class _Cancelled(Exception):
    """Raised in the answering thread once the user pressed Ctrl-C."""


class Repl:
    def __init__(self, settings: Settings, console: Console, k: int | None = None):
        from .assistant import Assistant

        self.console = console
        self.assistant = Assistant(settings, build_if_missing=False)
        self.conversation = self.assistant.chat()
        self.k = k

    def banner(self) -> None:
        info = self.assistant.describe()
        # Load the embedding model now, so a Ctrl-C during the first answer never interrupts a half-done import.
        self.assistant.embedder.encode_one("warm-up")
        self.console.print(
            f"rag chat — index {escape(info['index_dir'])}: {info['papers']} papers, {info['chunks']} chunks, "
            f"embeddings {escape(str(info['embedding_model']))} ({escape(str(info['embedding_backend']))}); answers: {escape(info['backend'])}. /help for commands.",
            highlight=False,
        )

    def handle(self, line: str) -> bool:
        """Run one input line; False means leave."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            return self.command(line)
        self.answer(line)
        return True

    def command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        last = self.conversation.last
        if name in ("/quit", "/exit", "/q"):
            return False
        if name == "/help":
            self.console.print(HELP, highlight=False)
        elif name == "/reset":
            self.conversation.reset()
            self.console.print("Conversation forgotten.")
        elif name == "/sources":
            if last is None:
                self.console.print("No answer yet.")
            else:
                print_hits(self.console, list(last.sources))
        elif name == "/paper":
            self.show_paper(arg.strip(), last)
        elif name == "/k":
            if arg.strip().isdigit() and 1 <= int(arg) <= 100:
                self.k = int(arg)
                self.console.print(f"Retrieving {self.k} papers per question.")
            else:
                self.console.print("usage: /k N  (1–100)")
        else:
            self.console.print(f"unknown command {escape(name)}; /help lists them")
        return True

    def show_paper(self, arg: str, last) -> None:
        if last is None or not last.citations:
            self.console.print("The last answer cited no papers.")
            return
        if not arg.isdigit() or not 1 <= int(arg) <= len(last.citations):
            self.console.print(f"usage: /paper N  (N from 1 to {len(last.citations)})")
            return
        citation = last.citations[int(arg) - 1]
        paper = self.assistant.paper(citation.paper_id)
        self.console.print(f"[bold][{arg}] {escape(paper.title)}[/bold] [dim]({paper.id})[/dim]")
        if paper.url:
            self.console.print(escape(paper.url))
        self.console.print(escape(paper.abstract))

    def answer(self, question: str) -> None:
        """The answer is computed in a worker thread while this (main) thread waits in short joins, so a Ctrl-C
        stops the turn at once whatever the worker is blocked in; a cancelled turn is not remembered."""
        streamed: list[str] = []
        cancel = threading.Event()
        result: dict = {}

        def on_token(text: str) -> None:
            if cancel.is_set():
                raise _Cancelled()  # ends the LLM stream; nothing more is printed for this turn
            streamed.append(text)
            self.console.print(escape(text), end="", highlight=False)
            self.console.file.flush()

        def work() -> None:
            try:
                result["answer"] = self.conversation.ask(question, k=self.k, on_token=on_token, cancel=cancel)
            except BaseException as exc:  # handed to the main thread
                result["error"] = exc

        worker = threading.Thread(target=work, name="rag-answer", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.05)
        except KeyboardInterrupt:
            cancel.set()
            self.console.print("\n[yellow](answer stopped; the session goes on)[/yellow]")
            return
        error = result.get("error")
        if isinstance(error, RagError):
            self.console.print(f"[red]error:[/red] {escape(str(error))}")
            return
        if error is not None:
            raise error
        answer = result["answer"]
        if not streamed:
            self.console.print(escape(answer.text), end="", highlight=False)
        self.console.print()
        print_references(self.console, answer)


def run_repl(settings: Settings, k: int | None = None, history_file: Path | None = None) -> None:
    console = Console(highlight=False)
    repl = Repl(settings, console, k=k)
    if sys.stdin.isatty():
        # A process started in the background by a non-interactive shell inherits SIGINT *ignored*, and Python
        # then never raises KeyboardInterrupt: a terminal chat must stop an answer on Ctrl-C however it was started.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        repl.banner()
        if sys.stdin.isatty():
            _interactive(repl, history_file or Path.home() / ".rag_history")
        else:
            for line in sys.stdin:
                if line.strip():
                    console.print(f"> {escape(line.strip())}")
                if not repl.handle(line):
                    break
    finally:
        repl.assistant.close()


def _interactive(repl: Repl, history_file: Path) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    session = PromptSession(history=FileHistory(str(history_file)))
    while True:
        try:
            line = session.prompt("> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        if not repl.handle(line):
            break
