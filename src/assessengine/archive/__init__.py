"""The archive: closed sessions as Parquet on a disk or S3-compatible storage, and cohort
re-scoring from it on Dask distributed.

    location.py  where an archive lives (a directory or s3://), through fsspec
    layout.py    the files, their Parquet schemas and the manifest
    export.py    store -> Parquet, each session's hash chain checked on the way
    reader.py    Parquet / Arrow IPC -> the kernel's column batches, streamed in bounded memory
    batches.py   one Arrow record batch -> one kernel batch, per column (the reader's converter)
    chunks.py    a whole archive as recorded-session chunks, for `assessengine score DIR|URL`
    digest.py    the events digest that ties a session's rows to its sessions-table row
    verify.py    `archive verify`: the archive against its manifest and the store
    rescore.py   one task per events file, scored with the kernel; in process or on Dask
    compare.py   which verdicts a re-score changed
"""
