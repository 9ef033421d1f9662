"""ImageNet validation set readers.

Layouts accepted (the root is what the user passes as IMAGENET):
  folder   root/<wnid>/<image>        one folder per WordNet id (the torchvision
                                      ImageFolder layout)
  flat     images in root/ (or root/images/, root/val/) plus a labels file:
           `val_labels.txt`-style lines `<file> <wnid>`, or Kaggle's
           `LOC_val_solution.csv` (`ImageId,PredictionString` whose first token is
           the wnid).

Class indices follow the sorted order of the 1000 WordNet ids, the order torchvision,
Keras and GluonCV predict in. That order comes from a synsets file when there is one
(`synsets.txt`, `LOC_synset_mapping.txt`), else from a labels file or folder set that
names all 1000 ids; a subset that names fewer cannot define it and is refused.

Nothing is left out unsaid: images without a label (flat: not in the labels file; folder: outside
a <wnid>/ folder), labels without an image (flat: labels file lines whose file is not there;
folder: empty <wnid>/ folders) and other files where only images belong (in <wnid>/ folders, in
images/ or val/) are counted, with a few example names, in Dataset and describe().

Imported by the host too (to plan and hash a dataset without a framework), so stdlib only.
"""

import csv
import hashlib
import os
import re

WNID = re.compile(r"^n\d{8}$")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp")
LABEL_FILES = ("val_labels.txt", "LOC_val_solution.csv")
SYNSET_FILES = ("synsets.txt", "LOC_synset_mapping.txt")
IMAGE_DIRS = ("images", "val", "")
NUM_CLASSES = 1000
EXAMPLES = 5  # names kept per count: enough to find the files, small enough for every result


class Tally(object):
    """How many files fell in a group, and the first few of them by name."""

    def __init__(self, names=()):
        names = sorted(names)
        self.count = len(names)
        self.examples = names[:EXAMPLES]

    def as_dict(self):
        return {"count": self.count, "examples": list(self.examples)}


class DatasetError(Exception):
    """The dataset cannot be read as an ImageNet val set; the message says why and the fix."""


class Dataset(object):
    """A resolved, ordered list of (relative path, class index) under `root`."""

    def __init__(self, root, layout, items, wnids, labels_file, synsets_file, total, limit, unlabeled=None,
                 labels_without_image=None, not_images=None):
        self.root = root
        self.layout = layout
        self.items = items  # list of (relpath, class_index), in evaluation order
        self.wnids = wnids
        self.labels_file = labels_file
        self.synsets_file = synsets_file
        self.total = total  # images available before `limit`
        self.limit = limit
        # Over the whole folder, not only the selection: images never evaluated, and why.
        self.unlabeled = unlabeled or Tally()  # images with no label
        self.labels_without_image = labels_without_image or Tally()
        self.not_images = not_images or Tally()  # other files where only images belong

    def manifest_sha256(self):
        """Hash of what determines a result: the files (name and size) and their labels."""
        digest = hashlib.sha256()
        for rel, label in self.items:
            size = os.path.getsize(os.path.join(self.root, rel))
            digest.update("{}\t{}\t{}\n".format(rel, size, label).encode("utf-8"))
        return digest.hexdigest()

    def describe(self):
        return {
            "root": os.path.abspath(self.root),
            "layout": self.layout,
            "labels_file": self.labels_file,
            "synsets_file": self.synsets_file,
            "images_available": self.total,
            "images_selected": len(self.items),
            "limit": self.limit,
            "selection": "all" if not self.limit else "first N by sha256(file name)",
            "manifest_sha256": self.manifest_sha256(),
            "unlabeled_images": self.unlabeled.as_dict(),
            "labels_without_image": self.labels_without_image.as_dict(),
            "not_images": self.not_images.as_dict(),
        }


def open_dataset(root, labels_file=None, limit=0):
    """Resolve `root` into a Dataset, or raise DatasetError naming what was expected."""
    if not os.path.isdir(root):
        raise DatasetError("ImageNet val set {!r}: not a directory".format(root))
    folders = sorted(d for d in os.listdir(root) if WNID.match(d) and os.path.isdir(os.path.join(root, d)))
    if folders and not labels_file:
        (pairs, tallies), layout = _folder_items(root, folders), "folder"
        label_names = folders
    else:
        labels_file = labels_file or _find_first(root, LABEL_FILES)
        if not labels_file:
            raise DatasetError(
                "ImageNet val set {!r}: no <wnid>/ folders and no labels file ({}) found; "
                "give one folder per WordNet id, or a flat folder with a labels file".format(
                    root, " or ".join(LABEL_FILES)))
        labels = _read_labels(labels_file)
        (pairs, tallies), layout = _flat_items(root, labels), "flat"
        label_names = sorted(set(labels.values()))
    wnids = _class_order(root, label_names)
    index = {w: i for i, w in enumerate(wnids)}
    unknown = sorted(set(w for _, w in pairs if w not in index))
    if unknown:
        raise DatasetError("ImageNet val set {!r}: labels name WordNet ids outside the 1000 classes: {}".format(
            root, ", ".join(unknown[:5])))
    items = [(rel, index[w]) for rel, w in pairs]
    if not items:
        unlabeled = tallies["unlabeled"]
        why = " ({} without a label, e.g. {})".format(unlabeled.count, ", ".join(unlabeled.examples)) \
            if unlabeled.count else ""
        raise DatasetError("ImageNet val set {!r}: no labelled images found{}".format(root, why))
    odd = [rel for rel, _ in items if not _utf8(rel)]
    if odd:
        raise DatasetError("ImageNet val set {!r}: {} image file names are not valid UTF-8, e.g. {!r}; predictions, "
                           "results and reports name every file in UTF-8: rename them (convmv -f latin1 -t utf8 -r "
                           "--notest FOLDER converts Latin-1 names)".format(root, len(odd), os.fsencode(odd[0])))
    total = len(items)
    if limit and limit < total:
        items = sorted(items, key=lambda it: hashlib.sha256(os.path.basename(it[0]).encode("utf-8")).hexdigest())[:limit]
        items.sort()
    synsets_file = _find_first(root, SYNSET_FILES)
    return Dataset(root, layout, items, wnids, labels_file, synsets_file, total, limit, **tallies)


def _utf8(name):
    try:
        name.encode("utf-8")  # a name the file system gave in other bytes holds surrogate escapes
        return True
    except UnicodeEncodeError:
        return False


def _find_first(root, names):
    for name in names:
        for folder in (root, os.path.dirname(os.path.abspath(root))):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _folder_items(root, folders):
    """(wnid/name, wnid) pairs, and the tallies: images outside a <wnid>/ folder (at the top or in
    another folder) have no label; an empty <wnid>/ folder is a label without an image."""
    pairs, unlabeled, empty, not_images = [], [], [], []
    for wnid in folders:
        names = sorted(os.listdir(os.path.join(root, wnid)))
        images = [n for n in names if _is_image(n)]
        pairs.extend((wnid + "/" + name, wnid) for name in images)
        not_images.extend(wnid + "/" + n for n in names if not _is_image(n))
        if not images:
            empty.append(wnid + "/")
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.isdir(path) and name not in folders:
            unlabeled.extend(name + "/" + n for n in sorted(os.listdir(path)) if _is_image(n))
        elif _is_image(name) and os.path.isfile(path):
            unlabeled.append(name)
    return pairs, dict(unlabeled=Tally(unlabeled), labels_without_image=Tally(empty), not_images=Tally(not_images))


def _flat_items(root, labels):
    """(path, wnid) pairs of the first image folder found, and the tallies: images the labels file
    does not name, and labels (file name or stem, as the file gives it) naming no image there."""
    for sub in IMAGE_DIRS:
        folder = os.path.join(root, sub) if sub else root
        if not os.path.isdir(folder):
            continue
        entries = sorted(os.listdir(folder))
        names = [n for n in entries if _is_image(n)]
        if names:
            prefix = sub + "/" if sub else ""
            pairs, unlabeled, named = [], [], set()
            for name in names:
                key = name if name in labels else os.path.splitext(name)[0]
                if key in labels:
                    pairs.append((prefix + name, labels[key]))
                    named.add(key)
                else:
                    unlabeled.append(prefix + name)
            # At the top of the set the labels, synsets and README files belong; in images/ or val/ only images.
            not_images = [prefix + n for n in entries if not _is_image(n)] if sub else []
            return pairs, dict(unlabeled=Tally(unlabeled), labels_without_image=Tally(set(labels) - named),
                               not_images=Tally(not_images))
    raise DatasetError("ImageNet val set {!r}: no images (.JPEG, .jpg, .png) in it or in images/ or val/".format(root))


def _read_labels(path):
    """Map file name (and stem) -> wnid from either labels format."""
    labels = {}
    with open(path, newline="") as handle:
        if path.endswith(".csv"):
            rows = csv.reader(handle)
            header = next(rows, None)
            if not header or header[0] != "ImageId":
                raise DatasetError("labels file {!r}: expected Kaggle's header 'ImageId,PredictionString'".format(path))
            for lineno, row in enumerate(rows, 2):
                if len(row) < 2 or not row[1].split():
                    raise DatasetError("labels file {!r} line {}: expected 'ImageId,<wnid> ...'".format(path, lineno))
                labels[row[0]] = row[1].split()[0]
        else:
            for lineno, line in enumerate(handle, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2 or not WNID.match(parts[1]):
                    raise DatasetError(
                        "labels file {!r} line {}: expected '<file name> <wnid>', got {!r}".format(path, lineno, line.strip()))
                labels[parts[0]] = parts[1]
    return labels


def _class_order(root, label_names):
    synsets = _find_first(root, SYNSET_FILES)
    if synsets:
        with open(synsets) as handle:
            wnids = [line.split()[0] for line in handle if line.strip()]
        if len(wnids) != NUM_CLASSES or any(not WNID.match(w) for w in wnids):
            raise DatasetError("synsets file {!r}: expected {} WordNet ids, one per line".format(synsets, NUM_CLASSES))
        return sorted(wnids)
    if len(label_names) == NUM_CLASSES:
        return sorted(label_names)
    raise DatasetError(
        "ImageNet val set {!r}: its labels name {} classes, so the 1000-class order is unknown; "
        "put a synsets file ({}) with the 1000 WordNet ids beside it".format(root, len(label_names), " or ".join(SYNSET_FILES)))
