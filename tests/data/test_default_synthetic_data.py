"""The default synthetic data set, pinned: the first lines conf/base ingests, pixel for pixel.

The default data depends only on the package version, the seed and the config (the fonts ship with the
package), so these hashes are the same on every machine with the same Pillow (FreeType), NumPy and SciPy. A
change of corpus, fonts, rendering, degradations or conf/base that changes the data fails here, so that it is
made on purpose and said.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import yaml

from htr_pipeline.config import DataConfig, validate_parameters
from htr_pipeline.data.materialise import MaterialisedSample, materialise_sample
from htr_pipeline.data.sources import read_sources
from tests.conftest import PROJECT_ROOT

PINNED_LINES = 8
PINNED_CLEAN_SHA256 = "8922ecff9776c947a7c85f67f1f584b76a3f8603b2733833047a7281e8b9692f"
PINNED_DEGRADED_SHA256 = "513baa22eb611411634b9cd3a534718459698bcdd6fcf1d0d243cc29e934abc3"


def default_data_config() -> DataConfig:
    """``data`` of conf/base/parameters.yml, through the project's validation, as ``kedro run`` sees it."""
    parameters = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "parameters.yml").read_text(encoding="utf-8"))
    return validate_parameters(parameters).data


def pixels_sha256(images: Sequence[np.ndarray]) -> str:
    """One digest of the images in order: each one's shape, then its uint8 pixels row by row."""
    digest = hashlib.sha256()
    for image in images:
        # image: (height, width) uint8, 255 = paper
        digest.update(np.asarray(image.shape, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def first_default_samples(count: int) -> list[MaterialisedSample]:
    """The first ``count`` samples of the default sources, rendered, normalised and degraded as ingestion does."""
    data = default_data_config()
    candidates = read_sources(data).candidates[:count]
    samples = [materialise_sample(candidate, data) for candidate in candidates]
    assert all(isinstance(sample, MaterialisedSample) for sample in samples), samples
    return samples


def test_the_default_synthetic_data_is_unchanged() -> None:
    data = default_data_config()
    assert [source.kind for source in data.sources] == ["synthetic"]
    assert data.sources[0].fonts == "bundled", "the default must not depend on the fonts a machine has"

    samples = first_default_samples(PINNED_LINES)
    clean_sha256 = pixels_sha256([sample.clean for sample in samples])
    degraded_sha256 = pixels_sha256([sample.degraded for sample in samples])
    lines = "\n".join(
        f"  {row['sample_id']} {row['width']}x{row['height']} {json.loads(row['synthesis'])['font_file']}: "
        f"{row['transcription']!r}"
        for row in (sample.manifest_row for sample in samples)
    )
    assert (clean_sha256, degraded_sha256) == (PINNED_CLEAN_SHA256, PINNED_DEGRADED_SHA256), (
        f"The default synthetic data changed: the first {PINNED_LINES} lines of conf/base now hash to\n"
        f"  clean    {clean_sha256} (pinned {PINNED_CLEAN_SHA256})\n"
        f"  degraded {degraded_sha256} (pinned {PINNED_DEGRADED_SHA256})\n"
        f"and are\n{lines}\n"
        "If the change is deliberate (corpus, bundled fonts, rendering, degradations or conf/base), set "
        "PINNED_CLEAN_SHA256 / PINNED_DEGRADED_SHA256 in this file to the new values and say in the README that "
        "the default data set changed (results measured on the old one are not comparable). Otherwise find what "
        "changed the pixels (a new Pillow, whose wheel carries FreeType, or a new NumPy or SciPy can too)."
    )
