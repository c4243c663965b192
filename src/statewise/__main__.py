"""``python -m statewise``: the same as the ``statewise`` command."""

from statewise.cli import main

raise SystemExit(main())
