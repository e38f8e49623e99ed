"""Shared domain code for the credit pipeline, packaged into every function like a Lambda layer."""
