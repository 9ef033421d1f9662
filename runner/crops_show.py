"""`dlmatrix crops`: the listing (runner/crops.py reads the entries)."""

import json
import os
import time


def show(folder, source, limit, entries, fmt, out):
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    used = sum(e["bytes"] for e in entries)
    if fmt == "json":
        # last_used as an ISO time in UTC, as built.at is
        shown = [dict(e, last_used=_iso(e["last_used"])) for e in entries]
        json.dump({"folder": folder, "chosen_by": source, "limit_bytes": limit, "used_bytes": used,
                   "free_bytes": free, "entries": shown}, out, indent=2, sort_keys=True)
        out.write("\n")
        return
    out.write("crop cache {} ({}): {} entr{}, {}{}; {} free on its disk (times UTC)\n".format(
        folder, source, len(entries), "y" if len(entries) == 1 else "ies", size_text(used),
        " of its limit of {}".format(size_text(limit)) if limit else "", size_text(free)))
    if not entries:
        return
    rows = [("key", "state", "images", "recipe", "decoded with", "size", "built", "last used", "val set")]
    for e in entries:
        rows.append((e["key"][:12], e["state"], _images_text(e),
                     recipe_text(e["recipe"]), libraries_text(e["libraries"]), size_text(e["bytes"]),
                     _built_text(e["built"]), _time_text(e["last_used"]), e["val_set"] or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
    if any(e["state"] == "left" or (e["partial_bytes"] and e["state"] != "building") for e in entries):
        out.write("left by cells that stopped while building: `dlmatrix crops --partial` removes it\n")
    for e in entries:
        if e["state"] == "damaged":
            out.write("damaged: {}: {}; no cell reads it, the next with its key rebuilds it (`dlmatrix crops --remove "
                      "{}` removes it now)\n".format(e["key"][:12], e["problem"], e["key"][:12]))


def recipe_text(recipe):
    """'256->224 shorter bilinear' (+ ', offset floor', ', framework resize', ', <decoder> decoder')."""
    if not recipe:
        return "-"
    text = "{}->{} {} {}".format(recipe.get("resize"), recipe.get("crop"), recipe.get("resize_mode"),
                                 recipe.get("interpolation"))
    if recipe.get("crop_offset") == "floor":
        text += ", offset floor"
    if recipe.get("resize_with") == "framework":
        text += ", framework resize"
    if recipe.get("decoder"):
        text += ", {} decoder".format(recipe["decoder"])
    return text


def libraries_text(libraries):
    if not libraries:
        return "-"
    parts = ["Pillow {}".format(libraries.get("pillow"))]
    for role in ("resize", "decoder"):
        if isinstance(libraries.get(role), dict):
            versions = libraries[role].get("versions") or {}
            parts.append(" ".join("{} {}".format(k, v) for k, v in sorted(versions.items())) or str(libraries[role]))
    return ", ".join(parts)


def size_text(count):
    """Binary units, as the limit's notation ("50g": 50 GiB) counts."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return "{:.1f} {}".format(count / scale, unit).replace(".0 ", " ")
    return "{} bytes".format(count)


def _built_text(built):
    if not built:
        return "-"  # entries from before the manifest recorded it
    return "{} {}".format(built.get("by", "?"), str(built.get("at", ""))[:16].replace("T", " "))


def _images_text(entry):
    if entry["images"] is None:
        return "-"
    return str(entry["images"]) + (" ({} unreadable)".format(entry["unreadable"]) if entry["unreadable"] else "")


def _iso(stamp):
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(stamp)) if stamp else None


def _time_text(stamp):
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(stamp)) if stamp else "-"
