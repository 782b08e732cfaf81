"""The progress bar every loop of the project uses: a widget in a notebook that can draw one, text elsewhere.

``tqdm.auto`` picks the notebook bar in any Jupyter kernel and, without ipywidgets, warns "IProgress not found"
as soon as it is imported (which ``%load_ext kedro.ipython`` does through the pipelines). The text bar is used
unless ipywidgets is there to draw the widget.
"""

from __future__ import annotations

from importlib.util import find_spec

if find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm

__all__ = ["tqdm"]
