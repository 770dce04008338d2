"""The `submit` pipeline: static rule checks, LLM judge, retiming, statistics, verdicts."""
