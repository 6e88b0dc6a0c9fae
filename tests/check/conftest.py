"""The seed deployment, built once per session and copied for each test that changes it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from intrafed.check import SeedDeployment, build_seed_deployment
from intrafed.pki import KeyType

IMP_IP, OCS_IP = "127.0.0.60", "127.0.0.61"


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> SeedDeployment:
    """The correct deployment; never changed by a test."""
    root = tmp_path_factory.mktemp("seed")
    return build_seed_deployment(root, imp_ip=IMP_IP, ocs_ip=OCS_IP, key_type=KeyType.EC_P256)


@pytest.fixture
def seed(pristine: SeedDeployment, tmp_path: Path) -> SeedDeployment:
    """A private copy of the correct deployment, for a test to make one mistake in."""
    return copy_of(pristine, tmp_path / "seed")


def copy_of(pristine: SeedDeployment, root: Path) -> SeedDeployment:
    """``pristine`` copied to ``root``, every path of it moved there."""
    shutil.copytree(pristine.root, root)

    def moved(path: Path) -> Path:
        return root / path.relative_to(pristine.root)

    return dataclasses.replace(
        pristine,
        root=root,
        ca_dir=moved(pristine.ca_dir),
        imp=dataclasses.replace(pristine.imp, home=moved(pristine.imp.home)),
        ocs=dataclasses.replace(pristine.ocs, home=moved(pristine.ocs.home)),
    )
