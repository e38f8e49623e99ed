"""Helpers of the API function: HTTP errors, dependency getters, the OpenAPI document."""
