"""Tests of infra/: deploy, teardown and packaging against moto and botocore's Stubber."""
