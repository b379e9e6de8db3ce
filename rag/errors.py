"""Typed errors; the CLI turns each into one clear message (see rag.cli)."""
from __future__ import annotations


class RagError(Exception):
    """Base class: a problem the user can act on, with a message that says how."""


class ConfigError(RagError):
    """Settings file or environment values are invalid."""


class CorpusError(RagError):
    """A corpus file cannot be read at all (missing, binary, unknown format)."""


class IndexMissingError(RagError):
    """No index exists where one was expected."""


class IndexMismatchError(RagError):
    """The index was built with other embedding or chunk settings than the current ones."""


class IndexCorruptError(RagError):
    """The index directory is damaged or incomplete."""


class IndexLockedError(RagError):
    """Another process holds the index for writing."""


class EvalFileError(RagError):
    """An eval file line is malformed or names a paper that is not in the index."""


class LLMError(RagError):
    """The LLM endpoint failed (unreachable, timed out, refused, or returned garbage)."""


class PromptError(RagError):
    """A prompt template is missing or lacks a required placeholder."""


class LocalModelError(LLMError):
    """A bundled local model is not installed, fails its checksum, or its server did not start."""


class NoMatchingPapersError(RagError):
    """Search filters (dates, category, author) that no indexed paper passes."""
