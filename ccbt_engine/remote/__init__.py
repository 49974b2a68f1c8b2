"""Remote control: the engine facade served over HTTP + WebSocket (``ccbt daemon``) and its client.

:mod:`.server` exposes :class:`ccbt_engine.api.Session` as a small JSON REST API plus an event
stream; :mod:`.client` is what ``ccbt dashboard`` (and scripts) use to talk to it; :mod:`.auth`
holds the credential checks both sides share. Reference: ``docs/remote.md``.
"""
