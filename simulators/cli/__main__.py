"""``python -m simulators.cli`` runs the pacsim command line."""

from simulators.cli import main

raise SystemExit(main())
