"""``sign2text serve``: the HTTP API on this machine, as the cloud serves it."""

from __future__ import annotations


def serve(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``handler:app`` with uvicorn until interrupted.

    The model loads on the first clip, as it does in the cloud.

    Raises:
        ConfigurationError: a ``SIGN2TEXT_*`` setting is invalid.
    """
    import uvicorn

    from sign2text_core.service import ServiceConfig

    # Read the settings now so a bad value stops the server before it listens.
    ServiceConfig.from_env()
    # uvicorn announces the address; the service logs one JSON line per request, so
    # uvicorn's own access log would only repeat it.
    uvicorn.run("handler:app", host=host, port=port, log_level="info", access_log=False)
