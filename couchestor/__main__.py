from couchestor.cli import main

raise SystemExit(main())
