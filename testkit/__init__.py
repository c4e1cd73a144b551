"""The testing kit shared by ``tests/`` and ``bench/``: real servers, peers and browsers.

* :mod:`testkit.server`: a real Takan server in the caller's event loop.
* :mod:`testkit.servers`: redis-server and moto's S3 server as child processes.
* :mod:`testkit.media`: aiortc client peers, pre-encoded VP8, counting sinks.
* :mod:`testkit.sockets`: a participant as the server sees it (Socket.IO + aiortc).
* :mod:`testkit.browser`: Debian Chromium through Playwright, with fake cameras.
* :mod:`testkit.recording`, :mod:`testkit.scenarios`, :mod:`testkit.archive`,
  :mod:`testkit.tcpproxy`: fixtures of the recorder, approval, archive and outage tests.
"""
