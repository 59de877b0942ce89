"""moto_server whose S3 object writes are atomic, as S3's are.

S3 decides a conditional write (If-None-Match: *, If-Match: <etag>) and makes it in one step: of
several writers racing on one key, exactly one succeeds and the others get 412. moto 5.2 reads the
key, checks the condition and then stores the new object, with nothing holding other request threads
off in between, so two racing PUTs can both pass the check. It happened in CI: two controllers both
won the signer lease (tests/integration/test_signer_lease_s3.py). The signer lease and the snapshot
manifest's lock rely on S3's behaviour, so the tests must get it from their stand-in too.

``make_object_writes_atomic()`` runs each object-level PUT, POST and DELETE request under one lock;
reads are not held off. Run as a script, this is ``moto_server`` with that change:

    python moto_atomic_s3.py -H 127.0.0.1 -p 5000
"""
from __future__ import annotations

import functools
import sys
import threading

from moto.s3.responses import S3Response

WRITE_HANDLERS = ("_key_response_put", "_key_response_post", "_key_response_delete")
_LOCK = threading.RLock()


def make_object_writes_atomic() -> None:
    """Serialise moto's object writes (idempotent); fails loudly if moto's handlers were renamed."""
    for name in WRITE_HANDLERS:
        handler = getattr(S3Response, name, None)
        if handler is None:
            raise RuntimeError(f"moto's S3Response has no {name}: this moto is not the one moto_atomic_s3 was written for")
        if getattr(handler, "_atomic", False):
            continue

        @functools.wraps(handler)
        def atomic(self, *args, _handler=handler, **kwargs):
            with _LOCK:
                return _handler(self, *args, **kwargs)

        atomic._atomic = True
        setattr(S3Response, name, atomic)


def main(argv: list[str]) -> None:
    from moto import server  # noqa: PLC0415 - the server only when run as one

    make_object_writes_atomic()
    server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
