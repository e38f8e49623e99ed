"""`python -m local_runtime`: the runtime's command line."""

from local_runtime.cli import main

main()
