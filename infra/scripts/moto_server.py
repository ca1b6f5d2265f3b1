"""moto in server mode, as `moto_server` runs it, with DynamoDB's transactions isolated.

moto's server answers each request on its own thread, and its TransactWriteItems rolls a
cancelled transaction back by putting back a copy of the whole table taken before it started.
A write another thread made in between (another transaction, a PutItem) is then silently
undone: with two connectors confirming one deployment at once, an audit event the other one
wrote vanishes from the trail. Real DynamoDB isolates transactions. Here every public operation
of moto's DynamoDB backend runs under one lock, so a transaction, its rollback included, is
never interleaved with another operation.

Usage: .venv/bin/python infra/scripts/moto_server.py -H 127.0.0.1 -p PORT
"""

import functools
import inspect
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()


def _serialised(operation):
    @functools.wraps(operation)
    def run(*args, **kwargs):
        with _LOCK:
            return operation(*args, **kwargs)

    return run


for _name, _member in list(vars(DynamoDBBackend).items()):
    if not _name.startswith("_") and inspect.isfunction(_member):
        setattr(DynamoDBBackend, _name, _serialised(_member))

if __name__ == "__main__":
    sys.exit(main())
