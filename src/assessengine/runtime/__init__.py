"""The live engine's runtime: the engine (ingest and scoring threads), the scorer it drives,
and the scoring backends (in-thread, or a process of its own)."""
