from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from detecteur.config import AugmentConfig, TrainConfig
from detecteur.training.data import assign_splits, build_manifest, write_records
from detecteur.training.train import train
from tests.postgres import PostgresCluster, cluster_or_none
from tests.toy_data import make_toy_dataset

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session", autouse=True)
def _torch_backend_and_a_temporary_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The service's default backend (onnxruntime) exports each new model file to ONNX first, ~10 s of CPU: the
    suite's throw-away models run on torch unless a test asks otherwise (tests/test_export.py does), and any graph
    a test exports lands in a temporary folder, never in the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETECTEUR_BACKEND", "torch")
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        # The service records cases by default: the suite's go to a temporary folder, never to ./var.
        patch.setenv("DETECTEUR_CASES_DIR", str(tmp_path_factory.mktemp("cases")))
        patch.delenv("DETECTEUR_DATABASE_URL", raising=False)
        yield


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL cluster for the whole session (tests/postgres.py); skipped, saying why, only when
    PostgreSQL is not installed. A PostgreSQL that is there but will not start fails the tests."""
    with cluster_or_none() as cluster:
        if cluster is None:
            pytest.skip(
                "PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin, on PATH or in "
                "$DETECTEUR_PG_BIN): the PostgreSQL half of the cases tests did not run"
            )
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty cases database: an SQLite file, and a new database on the throw-away PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cases.sqlite3'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database()


def toy_config(**overrides: object) -> TrainConfig:
    """A recipe small enough for CI: 64 px, batch 16, no data-loader workers, no degradations that would
    erase the toy images' high-frequency trace."""
    base: dict[str, object] = {
        "arch": "efficientnet_lite0",
        "in_chans": 4,
        "pretrained": True,
        "input_size": 64,
        "epochs": 2,
        "batch_size": 16,
        "lr": 1e-3,
        "num_workers": 0,
        "seed": 0,
        "augment": AugmentConfig(crop_scale=(0.85, 1.0), rotation_degrees=0, jpeg_probability=0, blur_probability=0),
    }
    return TrainConfig.model_validate(base | overrides)


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_dataset(tmp_path_factory.mktemp("toy") / "toyset", per_class=80)


@pytest.fixture(scope="session")
def toy_split(toy_root: Path) -> Path:
    split_file = toy_root.parent / "split.csv"
    write_records(assign_splits(build_manifest([toy_root], progress=False), seed=0), split_file)
    return split_file


@pytest.fixture(scope="session")
def toy_run(toy_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch training run on the toy data, shared by the tests that read runs."""
    run_dir = tmp_path_factory.mktemp("runs") / "toy"
    train(toy_config(), toy_split, run_dir)
    return run_dir
