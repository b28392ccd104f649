"""The pure core: data in, data out.

Nothing here imports I/O (zmq, a database driver, fastapi, yaml, socket).
"""
