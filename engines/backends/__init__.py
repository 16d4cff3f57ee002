"""One module per engine, the way anyio keeps one per backend: ``_threaded``, ``_asyncio``, ``_gevent``.

``_loop`` holds what the two loop engines (asyncio, gevent) share. Import an engine through
:func:`syncviz.engines.registry.load`, which loads only the one asked for; these modules
import :mod:`syncviz.engines.base`, never the other way round.
"""
