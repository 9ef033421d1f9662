"""Backends by name. Each makes an environment ready and runs the probe in it."""

from ..errors import UserError


def _local(options):
    from .local import LocalBackend
    return LocalBackend(ignore_pins=options.get("ignore_pins", False))


def _venv(options):
    from .venv import VenvBackend
    return VenvBackend(env_dir=options.get("env_dir"))


def _docker(options):
    from .docker import DockerBackend
    return DockerBackend(options["matrix"].docker, options["docker"])


BACKENDS = {
    "docker": _docker,
    "local": _local,
    "venv": _venv,
}


def get_backend(name, **options):
    if name not in BACKENDS:
        raise UserError("unknown backend {!r}; valid: {}".format(name, ", ".join(sorted(BACKENDS))))
    backend = BACKENDS[name](options)
    if options.get("matrix") is not None:
        backend.memory_limit = options["matrix"].defaults.memory_limit_bytes
    return backend
