"""The progress bar every loop of the project uses: text in a terminal, a widget in a notebook that can draw one.

``tqdm.auto`` picks the notebook bar in any Jupyter kernel and, without ipywidgets, warns "IProgress not found"
and draws nothing useful; there the text bar is used. Everywhere else it is ``tqdm.auto``, as before this module
existed. Which of the two is imported changes the main job's figures in their last digits (seen: the
recognizer's first-epoch CTC loss is 9.18041 with ``tqdm.auto`` and 9.17780 with ``tqdm.std``, all else equal;
why is not understood, most likely memory layout under torch's CPU kernels), and the README's figures are
those of ``tqdm.auto``.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec


def _notebook_without_widgets() -> bool:
    return "ipykernel" in sys.modules and find_spec("ipywidgets") is None


if _notebook_without_widgets():
    from tqdm.std import tqdm
else:
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
