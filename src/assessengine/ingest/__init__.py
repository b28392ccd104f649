"""The engine's ingest transport: the port (`port.IngestTransport`), the ZeroMQ transport
(`zmq`: a ZeroMQ ROUTER socket) and an in-process fake for tests (`fake`)."""
