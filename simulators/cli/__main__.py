"""``python -m simulators.cli`` runs the pacsim command line."""

from simulators.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
