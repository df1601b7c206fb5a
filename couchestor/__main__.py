"""``python -m couchestor``: the command line of :mod:`couchestor.cli`."""

from couchestor.cli import main

raise SystemExit(main())
