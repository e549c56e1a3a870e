"""Benchmark suite of ``lossval``: detection quality (``benchmarks.run``) and speed (``benchmarks.speed``).

Both are run as modules (``python -m benchmarks.run``) and write JSON + Markdown under
``benchmarks/results/`` (or ``--out-dir``). See ``benchmarks/README.md``.
"""

from __future__ import annotations

__all__: list[str] = []
