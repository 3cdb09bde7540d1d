"""Entry point for ``python -m vieter_lite``."""

from vieter_lite.cli import main

raise SystemExit(main())
