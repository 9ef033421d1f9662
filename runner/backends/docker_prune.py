"""`dlmatrix prune --images`: the docker backend's images that no build will use again.

An image is tagged dlmatrix/<row>:<hash of everything that went into it> (docker_image.py), so a new pin,
lock, base, Python or template makes a new tag and leaves the old image behind, 0.5-2.5 GB each. Kept, for
each row of the matrix and each base it was built on (its build record says which): the newest image,
the one the next run finds. Removed: the older ones, and the images of rows the matrix no longer has;
bisect's derived rows (bisect-*) only with --bisect. An image a container still uses is left, and said.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from .docker_image import REPOSITORY


@dataclass(frozen=True)
class Tagged:
    tag: str  # dlmatrix/<row>:<hash>
    row: str
    created: str  # the engine's ISO time: sorts as time
    base: str  # from the build record; "" where there is none
    image_id: str
    size: int


def stale(images, rows, bisect=False):
    """The tags to remove among `images` (Tagged), keeping the newest per (row, base) of the rows in `rows`."""
    newest = {}
    for image in images:
        key = (image.row, image.base)
        if key not in newest or image.created > newest[key].created:
            newest[key] = image
    remove = []
    for image in images:
        if image.row.startswith("bisect-") and not bisect:
            continue
        if image.row not in rows and not image.row.startswith("bisect-"):
            remove.append(image)
        elif newest[(image.row, image.base)] is not image:
            remove.append(image)
    return sorted(remove, key=lambda image: image.tag)


def tagged_images(client, build_dir):
    """Every dlmatrix/<row>:<hash> tag on the engine, with its build record's base."""
    found = []
    for image in client.images.list(name=REPOSITORY + "/*"):
        for tag in image.tags:
            repository, _, digest = tag.rpartition(":")
            if not repository.startswith(REPOSITORY + "/"):
                continue
            row = repository[len(REPOSITORY) + 1:]
            record = Path(build_dir) / "{}-{}.json".format(row, digest)
            try:
                base = json.loads(record.read_text()).get("base") or ""
            except (OSError, ValueError):
                base = ""
            found.append(Tagged(tag=tag, row=row, created=image.attrs.get("Created", ""), base=base,
                                image_id=image.id, size=int(image.attrs.get("Size") or 0)))
    return found


def prune_images(client, build_dir, rows, bisect, dry_run, say, among=None):
    """Remove the stale tags (and their build records); returns (tags removed, bytes of images gone). An image
    goes with its last tag: one that a kept tag still names stays. `among(Tagged)` limits what is looked at."""
    import docker

    images = [image for image in tagged_images(client, build_dir) if among is None or among(image)]
    doomed = stale(images, set(rows), bisect)
    left = {}  # image id -> its tags not (yet) removed
    for image in images:
        left.setdefault(image.image_id, set()).add(image.tag)
    removed, freed = 0, 0
    for image in doomed:
        if not dry_run:
            try:
                client.images.remove(image.tag, noprune=False)
            except docker.errors.APIError as exc:  # a container (even a stopped one) still uses it
                say("{}: left in place: {}".format(image.tag, exc.explanation or exc))
                continue
            row, digest = image.tag[len(REPOSITORY) + 1:].rsplit(":", 1)
            for suffix in (".json", ".log"):
                record = Path(build_dir) / "{}-{}{}".format(row, digest, suffix)
                if record.exists():
                    record.unlink()
        left[image.image_id].discard(image.tag)
        gone = not left[image.image_id]
        removed += 1
        freed += image.size if gone else 0
        say("{}{} ({:.1f} GB{})".format("would remove " if dry_run else "removed ", image.tag, image.size / 1e9,
                                         "" if gone else ", the image stays under another tag"))
    return removed, freed
