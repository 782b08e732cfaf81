"""Library warnings a user of this project can do nothing about, silenced before the libraries load.

Each filter names the message (and, where Python's filters apply, the module that warns), so a new warning
still shows. Importing this module installs the filters: ``settings.py`` imports it first, before anything
imports mlflow, and Kedro reads settings before it loads its plugins or creates the config loader.
"""

from __future__ import annotations

import logging
import warnings

_SILENCED = (
    # omegaconf 2.4 deprecates the resolver API that Kedro and kedro-mlflow call.
    (r"register_new_resolver\(\) is deprecated", r"kedro\..*|kedro_mlflow\..*"),
    # `import mlflow` imports tqdm.auto, which in a Jupyter kernel without ipywidgets warns; our own bars are
    # text bars there (htr_pipeline.progress).
    (r"IProgress not found", r"tqdm\..*"),
)

_SILENCED_IN_LOG = {
    # mlflow warns when kedro-mlflow defines its PythonModel without type hints, inside its own
    # ``simplefilter("once")``, which overrides any filter of ours; Kedro logs warnings (``py.warnings``).
    "py.warnings": ("Add type hints to the `predict` method",),
    # Our models are pickled on purpose (tracking.log_models says why), at every evaluation.
    "mlflow.pytorch": ("Saving pytorch model by Pickle or CloudPickle format",),
}
"""Per logger, the messages its log drops."""


class _DropLibraryWarnings(logging.Filter):
    def __init__(self, messages: tuple[str, ...]):
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.messages)


def silence_library_warnings() -> None:
    for message, module in _SILENCED:
        warnings.filterwarnings("ignore", message=message, category=Warning, module=module)
    for name, messages in _SILENCED_IN_LOG.items():
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _DropLibraryWarnings) for existing in logger.filters):
            logger.addFilter(_DropLibraryWarnings(messages))


silence_library_warnings()
