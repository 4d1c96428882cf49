"""Thin platform adapters over :mod:`sign2text_core.service`.

One module per platform or event source; each imports only what its platform needs, so
a Cloud Function never imports FastAPI and a Lambda never imports Flask.
"""
