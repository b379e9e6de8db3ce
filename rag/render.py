"""Terminal rendering shared by the CLI and the REPL (rich), kept out of the library's logic."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .prompts import REFUSAL
from .types import Answer, Hit


def snippet(text: str, width: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + "…"


def print_hits(console: Console, hits: list[Hit]) -> None:
    if not hits:
        console.print("No papers found.")
        return
    table = Table(show_header=True, header_style="bold", expand=True, show_lines=True)
    table.add_column("#", justify="right", width=3)
    table.add_column("paper", ratio=3)
    table.add_column("score", justify="right", width=8)
    table.add_column("best match", ratio=4)
    for hit in hits:
        table.add_row(str(hit.rank), f"{escape(hit.paper.title)}\n[dim]{hit.paper_id}[/dim]", f"{hit.score:.4f}",
                      escape(snippet(hit.snippet)))
    console.print(table)


def print_references(console: Console, answer: Answer) -> None:
    if answer.citations:
        console.print("\n[bold]References[/bold]")
        for c in answer.citations:
            console.print(f"[{c.number}] [bold]{escape(c.title)}[/bold] [dim]({c.paper_id})[/dim]")
            console.print(f"    “{escape(snippet(c.quote, 400))}”", style="italic")
    for warning in answer.warnings:
        console.print(f"[yellow]note:[/yellow] {escape(warning)}")
    v = answer.verification
    if answer.abstained and v.abstain_reason is not None and answer.text == REFUSAL:  # else the text says why
        console.print(f"[dim]why: {escape(v.abstain_reason.value)}[/dim]")  # --json carries it as abstain_reason
    if v.dropped_citations or v.removed_sentences or v.fell_back:
        console.print(f"[dim]verification: {v.dropped_citations} citation(s) dropped, {v.removed_sentences} "
                      f"unsupported sentence(s) removed{', fell back to extractive answer' if v.fell_back else ''}[/dim]")


def print_answer(console: Console, answer: Answer) -> None:
    console.print(escape(answer.text))
    print_references(console, answer)
    if answer.warnings and answer.sources:  # something went wrong (e.g. the LLM): show everything retrieved
        console.print("[dim]retrieved:[/dim]")
        for hit in answer.sources:
            console.print(f"[dim]  {hit.rank}. {escape(hit.paper.title)} ({hit.paper_id})[/dim]")
