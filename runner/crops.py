"""`dlmatrix crops`: what the error suite's crop cache holds, and taking entries out of it.

The cache is the probe's (runner/probe/crop_cache.py: its layout, keys and locks). This side reads the
entries' manifests, and removes entries by the rule the cache's own size limit follows: never one a cell is
building (its key's lock held). A cell that is reading an entry as it goes keeps reading its open crops file.
"""

import contextlib
import glob
import json
import os
import re

from .errors import UserError
from .crops_show import show, size_text
from .matrix import load_matrix
from .plan import crop_cache_settings
from .probe.crop_cache import CropCache, building, own_file
from .probe.crop_entry import crops_file_problem, manifest_problem
from .probe.crop_digests import MEMO_FORMAT, UNREADABLE
from .probe.crop_key import images_sha256

KEY = re.compile(r"[0-9a-f]{32}")  # runner/probe/crop_key.py content_key; the digests memos' names too

# An entry's state: "complete" (cells read it), "building" (a cell holds its lock and is writing it), "left"
# (crops without a manifest: a cell that stopped while building; the next cell with its key starts over),
# "damaged" (a manifest that cannot be read or is no entry of its key: the next cell with its key rebuilds it).


def add_crops_parser(sub, common):
    crops = sub.add_parser("crops", help="list the error suite's crop cache (each recipe's decoded crops of a val set, "
                                         "read by every later cell): entries, sizes, who built them, which val set; "
                                         "--remove, --partial or --all take entries out")
    common(crops)
    crops.add_argument("--dir", help="the cache folder (default: $DLMATRIX_CACHE, else [suites.error] crop_cache, "
                                     "else ~/.cache/dlmatrix/crops)")
    crops.add_argument("--remove", nargs="+", default=[], metavar="KEY",
                       help="remove these entries (the first characters of a key are enough)")
    crops.add_argument("--partial", action="store_true",
                       help="remove what cells that stopped while building an entry left behind")
    crops.add_argument("--all", action="store_true", help="remove every entry, and the val sets' file digests")
    crops.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    crops.add_argument("--format", choices=["text", "json"], default="text", help="of the listing (default: text)")


def cmd_crops(args, out):
    folder, source, limit = _where(args)
    removing = bool(args.remove or args.partial or args.all)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError("crops: {} ({}) is a file, not a crop cache folder".format(folder, source))
    if not os.path.isdir(folder):
        if args.remove:
            raise UserError("crops --remove: the crop cache {} ({}) holds no entries yet".format(folder, source))
        out.write("crop cache {} ({}): nothing there yet; the first error cell makes it, or where it cannot, records "
                  "why in its result (not stored)\n".format(folder, source))
        return 0
    entries = list_entries(folder)
    if not removing:
        show(folder, source, limit, entries, args.format, out)
        return 0
    targets = {}  # key -> (entry, the whole entry or only its partial files)
    for entry in entries if args.all else _matching(entries, args.remove):
        targets[entry["key"]] = (entry, True)
    if args.partial:
        for entry in entries:
            if entry["state"] == "left" or entry["partial_bytes"]:
                targets.setdefault(entry["key"], (entry, False))
    freed = sum(_take_out(folder, entry, whole, args.dry_run, out) for entry, whole in
                (targets[key] for key in sorted(targets)))
    if args.all:
        freed += _remove_digests(folder, args.dry_run, out)
    out.write("{} {}\n".format(size_text(freed), "would be freed" if args.dry_run else "freed"))
    return 0


def _where(args):
    """(folder, what chose it, the size limit in bytes or None)."""
    if args.dir:
        return os.path.abspath(os.path.expanduser(args.dir)), "--dir", None
    matrix = load_matrix(args.matrix)
    settings = crop_cache_settings(matrix)
    source = ("$DLMATRIX_CACHE" if os.environ.get("DLMATRIX_CACHE", "").strip() else
              "[suites.error] crop_cache in {}".format(args.matrix) if matrix.error.crop_cache else "the default")
    if settings is None:
        raise UserError("the crop cache is off ({} says \"off\"); give the folder to look at with --dir".format(source))
    return settings["dir"], source, settings["limit_bytes"]


def list_entries(folder):
    """Every entry under folder/entries, oldest use first: a dict each (see _entry)."""
    val_sets = _val_sets(folder)
    top = os.path.join(folder, "entries")
    names = sorted(os.listdir(top)) if os.path.isdir(top) else []
    # Only the names the cache gives its entries: a wrong --dir must not make a user's folders entries to remove.
    entries = [_entry(folder, key, val_sets) for key in names if KEY.fullmatch(key)]
    return sorted((e for e in entries if e is not None), key=lambda e: (e["last_used"] or 0.0, e["key"]))


def _entry(folder, key, val_sets):
    """The entry's listing, or None where it is no entry (an empty folder) or went while it was read."""
    where = os.path.join(folder, "entries", key)
    sizes = {}
    try:
        names = [name for name in os.listdir(where) if own_file(name)]
        manifest, problem = _manifest(os.path.join(where, "manifest.json"), key) \
            if "manifest.json" in names else (None, None)
        last_used = os.path.getmtime(os.path.join(where, "manifest.json")) if manifest or problem else None
    except OSError:
        return None  # removed meanwhile: evicted, or another `crops --remove`
    for name in names:
        with contextlib.suppress(OSError):
            sizes[name] = os.stat(os.path.join(where, name)).st_blocks * 512  # a partial file is sparse
    busy = building(folder, key)
    if not (names or busy):
        return None
    entry = {"key": key, "state": "building" if busy else "damaged" if problem else "complete" if manifest else "left",
             "bytes": sum(sizes.values()), "partial_bytes": sum(v for n, v in sizes.items() if n.endswith(".partial")),
             "images": None, "unreadable": None, "recipe": None, "libraries": None, "built": None,
             "last_used": last_used, "val_set": None, "problem": problem}
    if manifest:
        content = manifest.get("content", {})
        items = manifest.get("items", [])
        entry.update(images=len(items), unreadable=sum(1 for item in items if item[2]), recipe=content.get("recipe"),
                     libraries=content.get("libraries"), built=manifest.get("built"),
                     val_set=_val_set_of(items, content.get("images_sha256"), val_sets))
    return entry


def _manifest(path, key):
    """(manifest, None) of a readable entry, (None, why not) of a damaged one: as a cell decides
    (runner/probe/crop_cache.py complete_entry), whose next cell with the key rebuilds it."""
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        return None, None  # removed since the folder was listed
    except ValueError as exc:
        return None, "its manifest cannot be read ({})".format(exc)
    problem = manifest_problem(manifest, key) or _data_problem(os.path.dirname(path), manifest)
    return (None, problem) if problem else (manifest, None)


def _data_problem(where, manifest):
    """Why the crops file of a well-formed manifest cannot be read, or None: the cell's size check."""
    shape = manifest.get("shape")
    try:
        size = os.path.getsize(os.path.join(where, manifest["data"]))
    except FileNotFoundError:
        size = None
    expected = 0  # a shape it does not give: only a missing file is told
    if isinstance(shape, list) and len(shape) == 4 and all(isinstance(v, int) for v in shape):
        expected = manifest["offset"] + len(manifest["items"]) * shape[1] * shape[2] * shape[3]
    return crops_file_problem(manifest["data"], size, expected)


def _val_sets(folder):
    """{root: {file: digest}} from the digests cells took (folder/digests/*.json)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, "digests", "*.json"))):
        memo = _read(path)
        if isinstance(memo, dict) and memo.get("format") == MEMO_FORMAT and isinstance(memo.get("files"), dict):
            found[memo.get("root")] = {rel: mark[-1] for rel, mark in memo["files"].items()
                                       if isinstance(mark, list) and mark}
    return found


def _val_set_of(items, wanted, val_sets):
    """The folder whose files (as last hashed) are the entry's images, or None. An image that could not be read
    is in the key as its marker (runner/probe/crop_digests.py), which the memo does not keep: the manifest has it."""
    rels = [item[0] for item in items]
    for root, digests in val_sets.items():
        known = [digests.get(item[0]) or _marker(item[2]) for item in items]
        if None not in known and images_sha256(rels, known) == wanted:
            return root
    return None


def _marker(problem):
    return UNREADABLE + problem["errno"] if isinstance(problem, dict) and problem.get("errno") else None


def _matching(entries, prefixes):
    found = []
    for prefix in prefixes:
        hits = [e for e in entries if e["key"].startswith(prefix.lower())]
        if len(hits) != 1:
            raise UserError("crops --remove {}: {}; the entries: {}".format(
                prefix, "no entry's key starts with it" if not hits else "{} entries' keys start with it: give more "
                "of the key".format(len(hits)), ", ".join(e["key"] for e in entries) or "none"))
        found.append(hits[0])
    return found


def _take_out(folder, entry, whole, dry_run, out):
    """Remove the entry (whole) or what a cell left building it; the bytes freed (0 where a cell is building it)."""
    what = "{} ({})".format(entry["key"], "the entry" if whole else "left by a cell that stopped building it")
    size = entry["bytes"] if whole else entry["bytes"] if entry["state"] == "left" else entry["partial_bytes"]
    if entry["state"] == "building":
        out.write("left in place: {}: a cell is building it\n".format(what))
        return 0
    if dry_run:
        out.write("would remove {}, {}\n".format(what, size_text(size)))
        return size
    try:
        freed = CropCache(folder, 0).remove_unless_busy(entry["key"], only_left=not whole)
    except OSError as exc:
        raise UserError("crop cache {}: cannot remove {} ({}); remove it as the user that ran the cells, or "
                        "with write access to the folder".format(folder, what, exc))
    if freed is None:
        out.write("left in place: {}: a cell started building it just now\n".format(what))
        return 0
    out.write("removed {}, {}\n".format(what, size_text(freed)))
    return freed


def _remove_digests(folder, dry_run, out):
    freed = 0
    for path in sorted(glob.glob(os.path.join(folder, "digests", "*.json"))):
        if not KEY.fullmatch(os.path.basename(path)[:-len(".json")]):
            continue  # not a memo the cells wrote (crop_digests.py names them so)
        with contextlib.suppress(FileNotFoundError):
            size = os.path.getsize(path)
            if not dry_run:
                os.remove(path)
            freed += size
    if freed:
        out.write("{} the val sets' file digests ({}; the next cell hashes its files again)\n".format(
            "would remove" if dry_run else "removed", size_text(freed)))
    return freed


def _read(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None  # absent, or cut short by a writer that died: as good as absent
