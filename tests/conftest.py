"""Shared pytest setup."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: loads a large real dataset (10-20 s); deselect with -m 'not slow'"
    )
