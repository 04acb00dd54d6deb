"""The benchmark of studio against a bare Flask ceiling and a naive baseline."""
