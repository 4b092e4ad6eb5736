"""TFDS builder for the link-prediction benchmarks of the kgjax catalog.

One builder, one config per dataset (`nations`, `umls`, ..., `fb15k237`). Each split is stored
as array_record records `{head, relation, tail: text, index: int64}`, one record per line of the
split file, where `index` is the triple's position in the file: records can come back in
another order than they were written (TFDS orders them by hashed key unless shuffling is
disabled), and the catalog restores file order from `index`.

The files come either from `DownloadConfig(manual_dir=...)` (a local folder holding
train.txt, valid.txt and test.txt) or, when no manual folder exists, from the pinned upstream
URLs below, checked against their SHA-256. The SHA-256 of the files actually parsed is stored in
the dataset's metadata (`info.metadata["sha256"]`), so a reader can tell which files a prepared
copy was built from.

No TensorFlow: prepare with `file_format="array_record"` and read with `as_data_source`;
`tfds.load` and `as_dataset` need TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from kgjax.data import triples

_ROTATE = (
    "https://raw.githubusercontent.com/DeepGraphLearning/KnowledgeGraphEmbedding/"
    "2e440e0f9c687314d5ff67ead68ce985dc446e3a/data/"
)
_PYKEEN = (
    "https://raw.githubusercontent.com/pykeen/pykeen/"
    "05c7bbb20c952f3e5e958e694344ace4005b1bbb/src/pykeen/datasets/"
)

_KOK_DOMINGOS = """@inproceedings{kok2007statistical,
  title={Statistical Predicate Invention},
  author={Kok, Stanley and Domingos, Pedro},
  booktitle={ICML},
  year={2007}
}
@inproceedings{dettmers2018conve,
  title={Convolutional 2D Knowledge Graph Embeddings},
  author={Dettmers, Tim and Minervini, Pasquale and Stenetorp, Pontus and Riedel, Sebastian},
  booktitle={AAAI},
  year={2018}
}"""

_COUNTRIES = """@inproceedings{bouchard2015approximate,
  title={On Approximate Reasoning Capabilities of Low-Rank Vector Spaces},
  author={Bouchard, Guillaume and Singh, Sameer and Trouillon, Theo},
  booktitle={AAAI Spring Symposium on Knowledge Representation and Reasoning},
  year={2015}
}"""


@dataclasses.dataclass(eq=False)
class KgConfig(tfds.core.BuilderConfig):
    """One catalog dataset.

    Attributes:
      folder: the dataset's folder name in a local data directory (`fb15k-237`, `countries_s1`).
      upstream_folder: the folder name in the upstream repository (`FB15k-237`, `countries_S1`).
      urls: split -> pinned raw URL of the split file.
      sha256: split -> SHA-256 of the upstream file (verified after download).
      citation: BibTeX.
      homepage: the upstream repository at the pinned commit.
      licence: the data licence as far as it is known.
    """

    folder: str = ""
    upstream_folder: str = ""
    urls: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sha256: Mapping[str, str] = dataclasses.field(default_factory=dict)
    citation: str = ""
    homepage: str = ""
    licence: str = ""


def _config(
    name, folder, upstream_folder, base, sha256, description, citation, licence, homepage
) -> KgConfig:
    return KgConfig(
        name=name,
        description=description,
        folder=folder,
        upstream_folder=upstream_folder,
        urls={s: f"{base}{upstream_folder}/{s}.txt" for s in triples.SPLITS},
        sha256=dict(zip(triples.SPLITS, sha256, strict=True)),
        citation=citation,
        homepage=homepage,
        licence=licence,
    )


_PYKEEN_HOME = "https://github.com/pykeen/pykeen/tree/05c7bbb20c952f3e5e958e694344ace4005b1bbb"
_ROTATE_HOME = (
    "https://github.com/DeepGraphLearning/KnowledgeGraphEmbedding/tree/"
    "2e440e0f9c687314d5ff67ead68ce985dc446e3a"
)
_PYKEEN_LICENCE = "not stated upstream (PyKEEN code is MIT)"
_COUNTRIES_LICENCE = "not stated upstream (RotatE code is MIT)"
# The three Countries levels share their valid and test files.
_COUNTRIES_VALID_SHA = "f4b27648148a44f87e627140ec3a02ca4c884c32d348591147ca72f1d6fff5b0"
_COUNTRIES_TEST_SHA = "262ca5ae5ed3aa1927026e0f258cc52b10830185b93465b93b9360727e719158"

# Order = `catalog.NAMES`. SHA-256 per split (train, valid, test) of the upstream files.
CONFIGS = (
    _config(
        "nations",
        "nations",
        "nations",
        _PYKEEN,
        (
            "0830fa9da8e5bba2ccdaa45b7bdc9130451ba66b09ff2708f35fccaf82473e57",
            "2b337a62e51a2f45c283eac98a70d21b7e0e102136be1539b2a52c652a7b0530",
            "3971085165b47b6aeaec68058c6d8d98b3005e929db81268410b95ae4db770ab",
        ),
        "Nations (ConvE split, as shipped by PyKEEN): 14 entities, 55 relations.",
        _KOK_DOMINGOS,
        _PYKEEN_LICENCE,
        _PYKEEN_HOME,
    ),
    _config(
        "umls",
        "umls",
        "umls",
        _PYKEEN,
        (
            "873ef4925516b83e7f6f8cc02b4be51d848828710a7f65a956f0ac4a9e452f35",
            "025c98f8a4891e2a6582ec5b40ee0d904031edad9c52554522f4b7904820c98e",
            "a7eb529a3d2810fcc96341ccc97c625a5e202f8389673aa6bd317eeebbb79014",
        ),
        "UMLS (ConvE split, as shipped by PyKEEN): 135 entities, 46 relations.",
        _KOK_DOMINGOS,
        _PYKEEN_LICENCE,
        _PYKEEN_HOME,
    ),
    _config(
        "kinships",
        "kinships",
        "kinships",
        _PYKEEN,
        (
            "738612111a6acf0e39662bde24c7e72a4d1edf20931beea077da367dda689731",
            "c56f8630a583178b1e569f11a64aa535ae1ce0b0912d8b1e24716be2b37f04da",
            "05e5733265761d55be9c05bfaff5a8d0808df46f9c1e9d66cc3f2fe114e43d88",
        ),
        "Kinships (ConvE split, as shipped by PyKEEN): 104 entities, 25 relations.",
        _KOK_DOMINGOS,
        _PYKEEN_LICENCE,
        _PYKEEN_HOME,
    ),
    *(
        _config(
            f"countries_s{level}",
            f"countries_s{level}",
            f"countries_S{level}",
            _ROTATE,
            (train_sha, _COUNTRIES_VALID_SHA, _COUNTRIES_TEST_SHA),
            f"Countries S{level} (Bouchard et al. 2015), RotatE copy: 271 entities, 2 relations.",
            _COUNTRIES,
            _COUNTRIES_LICENCE,
            _ROTATE_HOME,
        )
        for level, train_sha in (
            (1, "5256bf3fc4181d7e87d819571e3acfa5425fc5af365b9ebe5c113740534ca561"),
            (2, "84c8f310fa076f902760f0909716b13bc0853a105ab9e0145e4e5135d855f68a"),
            (3, "80a8e3a26aff58b78fd5a453ec2a37591466bad621df8d05185f26763b663a0c"),
        )
    ),
    _config(
        "wn18rr",
        "wn18rr",
        "wn18rr",
        _ROTATE,
        (
            "038612e783c215ee5f3ca9fbfca27b8d0739be1028fe4ee7c174aecf0b83d5df",
            "453ce7202afa58094a04d2b1560ee2b02660f1c260b32ce6651c8ccedd1028ab",
            "0383bceaaa1096cf3c03ec021ed0048068e2355dbfc0239b292cefdac821cec5",
        ),
        "WN18RR (Dettmers et al. 2018), RotatE copy: 40,943 entities, 11 relations.",
        """@inproceedings{dettmers2018conve,
  title={Convolutional 2D Knowledge Graph Embeddings},
  author={Dettmers, Tim and Minervini, Pasquale and Stenetorp, Pontus and Riedel, Sebastian},
  booktitle={AAAI},
  year={2018}
}""",
        "WordNet 3.0 licence (permissive; keep its copyright notice with every copy)",
        _ROTATE_HOME,
    ),
    _config(
        "fb15k237",
        "fb15k-237",
        "FB15k-237",
        _ROTATE,
        (
            "6e4c2782169af21e9743f3b1d200886f5d595bf6bc504ec1351720949c5cdfae",
            "cf6309010852f6a8d47a45df830a426415d1ee6f7a3970a8376ff1fb81db4a5c",
            "5711cf41623ceb4eacc50eb6108a3ca6565c7492e3caaf82a3e355cc660d1574",
        ),
        "FB15k-237 (Toutanova & Chen 2015), RotatE copy: 14,541 entities, 237 relations.",
        """@inproceedings{toutanova2015observed,
  title={Observed versus latent features for knowledge base and text inference},
  author={Toutanova, Kristina and Chen, Danqi},
  booktitle={Workshop on Continuous Vector Space Models and their Compositionality},
  year={2015}
}""",
        "Microsoft Research Data License Agreement: non-commercial research use only",
        _ROTATE_HOME,
    ),
)


def sha256_file(path: str | os.PathLike) -> str:
    """Returns the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manual_folder(dl_manager: tfds.download.DownloadManager) -> epath.Path | None:
    """The manual folder, or None when there is none (TFDS signals that by AssertionError)."""
    try:
        return dl_manager.manual_dir
    except AssertionError:
        return None


class KgjaxTriples(tfds.core.GeneratorBasedBuilder):
    """(head, relation, tail) split files as array_record datasets; see the module docstring."""

    # Bump when the records or their meaning change: the version is part of the prepared
    # data's path, so a bump re-prepares instead of reading old records.
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Records {head, relation, tail, index} in file order."}
    BUILDER_CONFIGS = list(CONFIGS)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Point manual_dir at a folder holding the dataset's train.txt, valid.txt and test.txt "
        "(head<TAB>relation<TAB>tail per line), e.g. ../shared/data/fb15k-237."
    )

    # TFDS derives code_path from the package's resources and, on Python >= 3.9, then reaches
    # for the `importlib_resources` backport, which it does not install: without this override
    # every download_and_prepare fails with ModuleNotFoundError. The path only serves to look
    # for a checksums.tsv next to the module (there is none; downloads are checked here).
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        config: KgConfig = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{config.description} Licence: {config.licence}.",
            features=tfds.features.FeaturesDict(
                {
                    "head": tfds.features.Text(),
                    "relation": tfds.features.Text(),
                    "tail": tfds.features.Text(),
                    "index": np.int64,
                }
            ),
            homepage=config.homepage,
            citation=config.citation,
            metadata=tfds.core.MetadataDict(),
            # Written in key (= file) order: skips TFDS's shuffle pass; `index` still travels
            # with each record so readers never depend on it.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config: KgConfig = self.builder_config
        folder = _manual_folder(dl_manager)
        if folder is None:
            # No local files: fetch the pinned upstream ones and check they are what we pinned.
            paths = dl_manager.download(dict(config.urls))
            for split, path in paths.items():
                found = sha256_file(path)
                if found != config.sha256[split]:
                    raise triples.DataError(
                        f"{config.urls[split]}: SHA-256 {found} differs from the expected "
                        f"{config.sha256[split]} (downloaded to {path})"
                    )
        else:
            paths = {s: folder / f"{s}.txt" for s in triples.SPLITS}
        files = {s: os.fspath(p) for s, p in paths.items()}
        # Parse and validate everything before TFDS writes anything, so a malformed file fails
        # with its file and line and leaves no prepared copy behind.
        raw = {s: triples.read_triples_file(f) for s, f in files.items()}
        triples.build_dataset(config.name, raw, files)
        self.info.metadata["sha256"] = {s: sha256_file(f) for s, f in files.items()}
        self.info.metadata["files"] = files
        return {s: self._generate_examples(raw[s]) for s in triples.SPLITS}

    def _generate_examples(self, split_triples: list[tuple[str, str, str]]):
        for index, (head, relation, tail) in enumerate(split_triples):
            yield index, {"head": head, "relation": relation, "tail": tail, "index": index}
