"""The seed's task list, automated: the static checker, the live probe, and the seed
deployment they are tested against (DESIGN §5, §6)."""

from intrafed.check.deployment import (
    SeedDeployment,
    SeedNode,
    SeedUser,
    build_seed_deployment,
)

__all__ = ["SeedDeployment", "SeedNode", "SeedUser", "build_seed_deployment"]
