"""The published number a result is held against: the revision of its framework's table that applies to the version."""

from ..frameworks import FRAMEWORKS
from .pairs import package_versions


def published_for(matrix, result):
    env = matrix.environment(result["environment"])
    model = matrix.model(result["model"])
    if model is None:
        return None
    framework = result["framework"]
    variant = model.variant(framework)
    if variant is None:
        return None
    if env is not None:
        version = env.pinned_version(FRAMEWORKS[framework].version_package)
    else:  # an environment derived by bisect: the version it ran
        version = package_versions(result).get(FRAMEWORKS[framework].version_package)
    return variant.published_for(version) if version else None
