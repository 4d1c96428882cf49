"""Sign2Text core: a video of one signed word in, the word out.

Framework-agnostic: NumPy, OpenCV, PyAV and ONNX Runtime only. The cloud adapters
live in ``adapters/`` and ``handler.py``.

``classify``, ``Classifier`` and ``Prediction`` are imported on first access, so
importing the package stays cheap and loads no model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Classifier", "Prediction", "classify"]

if TYPE_CHECKING:
    from sign2text_core.prediction import Prediction
    from sign2text_core.signs import Classifier, classify

_LAZY = {
    "classify": "sign2text_core.signs",
    "Classifier": "sign2text_core.signs",
    "Prediction": "sign2text_core.prediction",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'sign2text_core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
