"""Tests of tests.support: private servers for integration and fault-injection tests."""
