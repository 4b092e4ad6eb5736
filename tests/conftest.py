"""Shared pytest setup."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: loads a large real dataset (10-20 s); deselect with -m 'not slow'"
    )


# The files that take longest, longest first: pytest-xdist (`make test`, --dist loadfile) hands
# files to its workers in collection order, so starting these first keeps both cores busy to
# the end instead of leaving one running the 8-device subprocess alone.
_LONGEST_FIRST = (
    "sharding_test.py",
    "golden_test.py",
    "train_test.py",
    "mmrns_test.py",
    "bench_test.py",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        name = item.path.name
        return _LONGEST_FIRST.index(name) if name in _LONGEST_FIRST else len(_LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within and among the other files is kept
