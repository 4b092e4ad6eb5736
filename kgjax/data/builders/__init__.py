"""TensorFlow Datasets builders of the kgjax catalog (host side, no TensorFlow needed).

Kept in a package rather than a single module: TFDS looks for builder metadata relative to the
builder's package.
"""

from kgjax.data.builders.kg_triples import CONFIGS, KgConfig, KgjaxTriples, sha256_file

__all__ = ["CONFIGS", "KgConfig", "KgjaxTriples", "sha256_file"]
