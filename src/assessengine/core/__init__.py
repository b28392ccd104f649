"""The pure core: data in, data out.

Nothing here imports I/O (zmq, sqlite3, fastapi, yaml, socket).
"""
