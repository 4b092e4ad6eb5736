"""Shared pytest setup."""

import os
import pathlib
import tempfile

import pytest

# The shared data (../shared/data layout), as the tests that read real datasets find it.
DATA_DIR = pathlib.Path(
    os.environ.get("KGJAX_DATA_DIR") or pathlib.Path(__file__).parents[1] / ".." / "shared" / "data"
)


def pytest_configure(config):
    # JAX's persistent compilation cache, fresh for each session: a test that trains twice
    # (resume, ablation pairs) compiles each step function once instead of once per run, as a
    # new `jax.jit` closure would. Subprocess tests inherit it through the environment.
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="kgjax-jax-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    # JAX reads those variables when it is first imported, which may have happened already
    # (a plugin, an xdist worker): set this process's options directly as well.
    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs",
        float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
    )
    jax.config.update(
        "jax_persistent_cache_min_entry_size_bytes",
        int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]),
    )
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


@pytest.fixture(scope="session")
def wn():
    """The real WordNet 3.0 database, read once per test process (skips without it)."""
    from kgjax.data import wordnet

    folder = DATA_DIR / wordnet.FOLDER
    if not folder.is_dir():
        pytest.skip(f"{folder} not found; runs with KGJAX_DATA_DIR set to the shared data")
    return wordnet.load_wordnet(DATA_DIR)
