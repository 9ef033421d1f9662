"""The commands around the matrix rather than in it: the rows' locks, requirements files, one environment,
the docker base image, a wheelhouse for air-gapped hosts."""

import sys
from dataclasses import replace
from pathlib import Path

from .errors import UserError
from .matrix import load_matrix
from .progress import say as _say
from .storage import make_folder, write_text



def add_tool_parsers(sub, common):
    lock = sub.add_parser("lock", help="resolve each row's whole dependency set (every package, exact version, sha256 "
                                       "of each file) with uv into locks/<row>-<device>.txt beside the matrix")
    common(lock)
    lock.add_argument("rows", nargs="*", metavar="ROW", help="only these environments (default: every row)")
    lock.add_argument("--device", help="cpu or cuda: the build the lock is for (default: both)")
    lock.add_argument("--upgrade", action="store_true", help="re-resolve even locks that match their row (newer "
                                                              "releases of unpinned packages; changes cell ids)")
    lock.add_argument("--check", action="store_true", help="resolve nothing: exit 2 naming every lock that is "
                                                            "missing or does not match matrix.toml")

    reqs = sub.add_parser("requirements", help="write each environment's pins as a pip requirements file "
                                               "(to rebuild a row by hand: pip install -r)")
    common(reqs)
    reqs.add_argument("--out", default=".pins", help="folder for <environment>.txt (default: .pins)")

    env = sub.add_parser("env", help="build (or reuse) one environment with the venv backend and print its "
                                     "interpreter's path")
    common(env)
    env.add_argument("name", help="an environment of the matrix")
    env.add_argument("--env-dir", help="where the venv backend keeps environments (default: $DLMATRIX_ENV_DIR, else "
                                       "~/.cache/dlmatrix/envs)")
    env.add_argument("--device", default="cpu", help="whose lock to build it from: cpu or cuda (default: cpu)")
    env.add_argument("--overlay", metavar="PYTHON",
                     help="also let interpreter PYTHON (same minor version; e.g. a tox env with pytest) import the "
                          "environment's packages, ahead of its own")

    base = sub.add_parser("docker-base", help="build the CPU base image without any registry: debootstrap a "
                                              "minimal Debian and `docker import` it under [docker] cpu_base")
    common(base)
    base.add_argument("--suite", default="bookworm", help="Debian release (default: bookworm)")
    base.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror")
    base.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    base.add_argument("--from-tarball", metavar="FILE", help="no debootstrap: `docker load` FILE (from `docker save` "
                                                             "on another host) and tag it as [docker] cpu_base")

    prune = sub.add_parser("prune", help="remove the venv environments no row of the matrix uses any more (an "
                                         "edited pin or a re-made lock leaves the old one behind); --images: "
                                         "the docker images too")
    common(prune)
    prune.add_argument("--env-dir", help="where the venv backend keeps environments (default: $DLMATRIX_ENV_DIR, else "
                                       "~/.cache/dlmatrix/envs)")
    prune.add_argument("--bisect", action="store_true", help="also remove the environments bisect derived")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    prune.add_argument("--images", action="store_true", help="also the docker backend's images no build will use "
                                                             "again: per row and base all but the newest, and those "
                                                             "of rows the matrix no longer has")
    prune.add_argument("--build-dir", help="the docker backend's build records (default: ~/.cache/dlmatrix/docker)")

    house = sub.add_parser("wheelhouse", help="download every wheel the matrix's environments install into DIR "
                                              "(on a connected machine), for air-gapped docker builds")
    common(house)
    house.add_argument("out", help="the wheelhouse folder")
    house.add_argument("--env", action="append", default=[], dest="environments", help="only this environment")
    house.add_argument("--device", default="cpu", help="whose locks to download: cpu or cuda (default: cpu)")


def cmd_docker_base(args, out):
    from .dockerbase import build_base_image, load_base_image

    matrix = load_matrix(args.matrix)
    if not matrix.docker.cpu_base:
        raise UserError("{}: [docker] cpu_base is not set; it names the image this command builds".format(args.matrix))
    if args.from_tarball:
        out.write("{} {}\n".format(matrix.docker.cpu_base, load_base_image(matrix.docker.cpu_base, args.from_tarball, _say)))
        return 0
    image_id = build_base_image(matrix.docker.cpu_base, args.suite, args.mirror, args.force, _say)
    out.write("{} {}\n".format(matrix.docker.cpu_base, image_id))
    return 0


def cmd_lock(args, out):
    from .locks import DEVICES, device_kind, locked_matrix, shown
    from .locks_resolve import ResolveFailed, make_lock

    matrix = load_matrix(args.matrix)
    known = [env.name for env in matrix.environments]
    for name in args.rows:
        if name not in known:
            raise UserError("{}: no environment {!r}; valid: {}".format(args.matrix, name, ", ".join(known)))
    devices = (device_kind(args.device),) if args.device else DEVICES
    if args.check:
        selected = replace(matrix, environments=tuple(e for e in matrix.environments if not args.rows or e.name in args.rows))
        problems = []
        for device in devices:
            try:
                locked_matrix(selected, device)
            except UserError as exc:
                problems.append(str(exc))
        if problems:
            raise UserError("\n".join(problems))
        out.write("{} locks of {} rows match {}\n".format("/".join(devices), len(selected.environments), args.matrix))
        return 0
    failed = []
    for device in devices:
        for env in matrix.environments:
            if args.rows and env.name not in args.rows:
                continue
            try:
                path, what = make_lock(matrix.path, env, device, upgrade=args.upgrade)
            except ResolveFailed as exc:
                _say("{} {}: cannot be resolved: {}".format(env.name, device, exc.reason))
                failed.append((env.name, device))
                continue
            out.write("{}: {}\n".format(shown(path), what))
    if failed:
        raise UserError("no lock could be resolved for {}: their pins cannot be installed together (uv's reasons "
                        "above); fix them in {} and run `.venv/bin/dlmatrix lock` again".format(
                            ", ".join("{} ({})".format(name, device) for name, device in failed), args.matrix))
    return 0


def cmd_wheelhouse(args, out):
    from .wheelhouse import fill_wheelhouse

    matrix = load_matrix(args.matrix)
    failures = fill_wheelhouse(matrix, Path(args.out), args.environments, _say, device=args.device)
    out.write("{}: {} wheels{}\n".format(args.out, len(list(Path(args.out).glob("*.whl"))),
                                        "; failed: " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


def cmd_requirements(args, out):
    """matrix.toml stays the one place pins live; these files are derived from it."""
    folder = make_folder(args.out, flag="--out")
    for env in load_matrix(args.matrix).environments:
        lines = ["# generated from {} [environments.{}]; do not edit".format(args.matrix, env.name)]
        if env.index_url:
            lines.append("--index-url {}".format(env.index_url))
        lines += ["--extra-index-url {}".format(url) for url in env.extra_index_urls]
        path = folder / "{}.txt".format(env.name)
        write_text(path, "\n".join(lines + list(env.packages)) + "\n", flag="--out")
        out.write("{}\n".format(path))
    return 0


def cmd_env(args, out):
    from .backends.base import EnvironmentBuildError
    from .backends.venv import VenvBackend, overlay
    from .locks import locked

    matrix = load_matrix(args.matrix)
    env = matrix.environment(args.name)
    if env is None:
        raise UserError("{}: no environment {!r}; valid: {}".format(
            args.matrix, args.name, ", ".join(sorted(e.name for e in matrix.environments))))
    env = locked(matrix, env, args.device)
    try:
        ready = VenvBackend(args.env_dir).prepare(env, _say)
        if args.overlay:
            sys.stderr.write("{} now imports {}'s packages ({})\n".format(
                args.overlay, args.name, overlay(ready.python, args.overlay)))
    except EnvironmentBuildError as exc:
        sys.stderr.write("error: {}\n".format(exc.reason))
        return 1
    out.write(ready.python + "\n")
    return 0


def cmd_prune(args, out):
    """Environments are content-addressed (<row>-<hash of its content and lock>), so one no row names is garbage;
    one that another process is building right now (its build lock held) is left alone."""
    import shutil

    from .backends.venv import VenvBackend
    from .locks import DEVICES, locked
    from .storage import lock_holder

    matrix = load_matrix(args.matrix)
    backend = VenvBackend(args.env_dir)
    keep = set()
    for device in DEVICES:
        for env in matrix.environments:
            try:
                keep.add(backend.location(locked(matrix, env, device)).name)
            except UserError:
                continue  # no current lock for this device: nothing of it to keep
    if not backend.env_dir.is_dir():
        out.write("{}: no environments\n".format(backend.env_dir))
        return 0
    freed, removed = 0, []
    for folder in sorted(p for p in backend.env_dir.iterdir() if p.is_dir()):
        if folder.name in keep or (folder.name.startswith("bisect-") and not args.bisect):
            continue
        build_lock = backend.env_dir / ".{}.lock".format(folder.name)
        holder = lock_holder(build_lock)
        if holder is not None:
            _say("{}: left in place, pid {} is building it".format(folder, holder))
            continue
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
        removed.append(folder)
        freed += size
        if not args.dry_run:
            shutil.rmtree(folder)
            if build_lock.exists():
                build_lock.unlink()
        out.write("{}{} ({:.1f} GB)\n".format("would remove " if args.dry_run else "removed ", folder, size / 1e9))
    kept = sum(1 for folder in backend.env_dir.iterdir() if folder.name in keep)
    out.write("{} environments, {:.1f} GB{}; kept {} environment{} of the matrix's rows{}\n".format(
        len(removed), freed / 1e9, " would be freed" if args.dry_run else " freed", kept, "" if kept == 1 else "s",
        "" if args.bisect else " and bisect's (--bisect removes those too)"))
    if args.images:
        _prune_images(matrix, args, out)
    return 0


def _prune_images(matrix, args, out):
    from .backends.docker_cell import no_engine
    from .backends.docker_image import default_build_dir
    from .backends.docker_prune import prune_images

    try:
        import docker
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - no package, no socket, no engine: one message
        raise no_engine("prune --images (leave out --images to prune only the environments)", exc) from None
    build_dir = args.build_dir or default_build_dir()
    removed, freed = prune_images(client, build_dir, [env.name for env in matrix.environments], args.bisect,
                                  args.dry_run, lambda line: out.write(line + "\n"))
    out.write("{} image tags, {:.1f} GB{}; kept the newest image of each row and base\n".format(
        removed, freed / 1e9, " would be freed" if args.dry_run else " freed"))
