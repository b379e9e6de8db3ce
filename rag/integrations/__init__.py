"""Adapters that let other frameworks use the assistant's components (each imports its framework lazily)."""
