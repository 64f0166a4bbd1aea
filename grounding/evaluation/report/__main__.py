"""``python -m grounding.evaluation.report RUN... -o FILE`` (the Makefile's ``make report``)."""
from .cli import main

raise SystemExit(main())
