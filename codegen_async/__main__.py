"""`python -m codegen_async`: the command line."""

from codegen_async.cli import main

raise SystemExit(main())
