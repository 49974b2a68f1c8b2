"""The mainline DHT (BEP 5, 32, 42, 43, 51).

``routing`` (k-buckets, BEP 42 ids) and ``store`` (announced peers, tokens) are pure logic;
``node`` is the asyncio node (own UDP sockets or an external datagram transport); ``service``
wires it to the session and runs each torrent's get_peers/announce_peer cycle. The KRPC message
codec lives in :mod:`ccbt_engine.protocol.krpc`.
"""
