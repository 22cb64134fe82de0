"""Thin shim so ``python cli.py ...`` works from a checkout; the command line lives in
:mod:`simulators.cli` (the installed ``pacsim`` script points there)."""

from simulators.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
