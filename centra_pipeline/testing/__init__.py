"""Hooks the crash tests use to stop a run at a named point; no-ops unless a test sets them."""
