"""Split ``photos/extra/`` into training photos and a held-out set of everyday photos.

    python bench/everyday_split.py ../shared/data/photos/extra OUT

``OUT/everyday/`` gets the kphotoalbum snapshots (people, dogs, coast, snow) and the
gnome-control-center avatar photos (animals, food, flowers, objects): 58 photos like the ones
users bring, held out by source package, so no person or snapshot series is on both sides.
``OUT/extra-train/`` gets the other 151 (scratch scenes, dlib faces and groups, tuxpaint and
lomiri textures and landscapes). Both are folders of symbolic links (the photos are not copied),
for ``cinn train colorize --data TRAIN --data OUT/extra-train`` and ``cinn eval colorize --data
OUT/everyday``. OUT must not exist yet (an existing split is never changed).
"""

from __future__ import annotations

import sys
from pathlib import Path

HELD_OUT = ("kphotoalbum__", "gnome-control-center-data__")  # file-name prefixes: the source package
PHOTO_SUFFIXES = {".webp", ".jpg", ".jpeg", ".png"}


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    extra, out = Path(argv[0]).resolve(), Path(argv[1])
    if out.exists():
        raise SystemExit(f"everyday_split: {out} exists already (remove it to split again)")
    photos = sorted(p for p in extra.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise SystemExit(f"everyday_split: no photos in {extra}")
    counts = {"everyday": 0, "extra-train": 0}
    for photo in photos:
        part = "everyday" if photo.name.startswith(HELD_OUT) else "extra-train"
        (out / part).mkdir(parents=True, exist_ok=True)
        (out / part / photo.name).symlink_to(photo)
        counts[part] += 1
    print(" ".join(f"{part}={n}" for part, n in counts.items()), f"out={out}")


if __name__ == "__main__":
    main(sys.argv[1:])
