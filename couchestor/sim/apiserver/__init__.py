"""The Kubernetes API server emulator: the REST protocol of kube-apiserver over an in-memory store.

``ApiServer`` is the state and the ASGI app (``await api(scope, receive, send)``); :func:`serve` runs it
with hypercorn's trio worker; :func:`write_kubeconfig` writes a kubeconfig for clients such as kubectl.
Fault-injection knobs are on ``ApiServer.chaos`` (:class:`Chaos`) and over HTTP under ``/_sim/``.
"""

from couchestor.sim.apiserver.app import ApiServer
from couchestor.sim.apiserver.chaos import Chaos
from couchestor.sim.apiserver.server import serve, write_kubeconfig

__all__ = ["ApiServer", "Chaos", "serve", "write_kubeconfig"]
