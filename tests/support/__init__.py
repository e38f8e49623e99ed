"""Test support: private throwaway servers (services) and their pytest fixtures (fixtures)."""
