"""The published number a result is held against: the revision of its framework's table that applies to the version."""

from packaging.version import Version

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
    version = ran_version(env, result)
    return variant.published_for(version) if version else None


def ran_version(env, result):
    """The framework version the result ran with: the row's pin, unless the cell ran another (the local backend
    with --ignore-pins) or its environment was derived by bisect (env None)."""
    package = FRAMEWORKS[result["framework"]].version_package
    installed = package_versions(result).get(package)
    pinned = env.pinned_version(package) if env is not None else None
    if pinned and installed and Version(installed).public != Version(pinned).public:
        return installed
    return pinned or installed
