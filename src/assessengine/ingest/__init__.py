"""The engine's ingest transport: the port (`port.IngestTransport`), the ZeroMQ transport
(`zmq`, over `adapters.zmq_ingest`) and an in-process fake for tests (`fake`)."""
