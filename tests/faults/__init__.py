"""The fault suite: the real system against private servers, broken on purpose, then audited."""
