"""Per-sample random generators, so results never depend on processing order or worker count."""

import zlib

import numpy as np


def rng_for(seed: int, sample_id: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on the run seed, the sample id and what the randomness is for."""
    key = zlib.crc32(f"{purpose}\x1f{sample_id}".encode())
    return np.random.default_rng(np.random.SeedSequence([seed, key]))
