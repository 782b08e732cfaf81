"""Generator, discriminator and recognizer variants, built by name from the validated config."""

from htr_pipeline.models.recognizer import RecognizerOutput
from htr_pipeline.models.registry import (
    build_discriminator,
    build_generator,
    build_recognizer,
    generator_size_multiple,
)

__all__ = [
    "RecognizerOutput",
    "build_discriminator",
    "build_generator",
    "build_recognizer",
    "generator_size_multiple",
]
