"""A Kubernetes client on httpx + trio + msgspec, with no Kubernetes client library.

- :mod:`~couchestor.kube.config`: find and load the cluster configuration (kubeconfig or in-cluster).
- :mod:`~couchestor.kube.client`: :class:`KubeClient`, typed CRUD/patch/list/watch calls with rate limit,
  timeouts and bounded retries.
- :mod:`~couchestor.kube.errors`: typed errors (:class:`NotFound`, :class:`Conflict`, :class:`Gone` ...).
- :mod:`~couchestor.kube.resources`: :class:`Resource` and the resource types the project uses.
- :mod:`~couchestor.kube.watcher`, :mod:`~couchestor.kube.store`, :mod:`~couchestor.kube.reflector`:
  list+watch into an indexed in-memory cache with change notifications.
"""

from couchestor.kube.client import KubeClient as KubeClient
from couchestor.kube.config import (
    ClusterConfig as ClusterConfig,
    load_config as load_config,
    load_incluster as load_incluster,
    load_kubeconfig as load_kubeconfig,
)
from couchestor.kube.errors import (
    AlreadyExists as AlreadyExists,
    ApiError as ApiError,
    BadRequest as BadRequest,
    CallTimeout as CallTimeout,
    ConfigError as ConfigError,
    Conflict as Conflict,
    ConnectionFailed as ConnectionFailed,
    CredentialError as CredentialError,
    Forbidden as Forbidden,
    Gone as Gone,
    Invalid as Invalid,
    KubeError as KubeError,
    MethodNotAllowed as MethodNotAllowed,
    NotFound as NotFound,
    ServerError as ServerError,
    TooManyRequests as TooManyRequests,
    TransportError as TransportError,
    Unauthorized as Unauthorized,
    UnsupportedMediaType as UnsupportedMediaType,
)
from couchestor.kube.objects import ObjectKey as ObjectKey
from couchestor.kube.reflector import Reflector as Reflector
from couchestor.kube.resources import Resource as Resource
from couchestor.kube.retry import RetryPolicy as RetryPolicy
from couchestor.kube.store import Change as Change, Store as Store, Subscription as Subscription
from couchestor.kube.watcher import Watcher as Watcher, WatcherError as WatcherError
