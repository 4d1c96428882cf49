"""Sign2Text core: a video of one signed word in, the word out.

Framework-agnostic: numpy, OpenCV and ONNX Runtime only. The cloud adapters live in
``handler.py``.
"""

__version__ = "0.1.0"
