"""`python -m infra`: deploy, tear down, package and inspect the AWS deployment."""

from infra.cli import main

raise SystemExit(main())
