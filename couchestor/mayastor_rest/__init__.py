"""Mayastor 2.x over its control-plane REST API: wire types, a typed client, and the volume backend."""

from couchestor.mayastor_rest.backend import CORDON_RECORD, CordonRecord, RestBackend
from couchestor.mayastor_rest.client import MayastorRestClient, MayastorRestError, NotFoundError
from couchestor.mayastor_rest.mirror import RestVolumeReflector, to_mayastor_volume

__all__ = [
    "CORDON_RECORD",
    "CordonRecord",
    "MayastorRestClient",
    "MayastorRestError",
    "NotFoundError",
    "RestBackend",
    "RestVolumeReflector",
    "to_mayastor_volume",
]
