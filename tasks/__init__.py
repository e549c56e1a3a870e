"""Prefect tasks, one per pipeline stage. Each reads its inputs from paths, calls the
``lossval`` library, writes its outputs atomically and returns paths and small records."""
