"""`python -m credit setup`: the application's own set-up, run before the functions start."""

from credit.cli import main

main()
