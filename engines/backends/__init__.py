"""One module per engine, the way anyio keeps one per backend: ``_threaded``, ``_asyncio``, ``_gevent``.

Import them through :func:`syncviz.engines.base.engine_class`, which loads only the one asked for.
"""
