"""Variant-shaped folders from the sample photos, for trying `nnprobe eval --variant` / `--data NAME=DIR`.

    python samples/make_variant_folders.py OUT

writes OUT/val (the photos under their wnids, as ImageNet val), OUT/imagenet-r (those whose class is one of
ImageNet-R's 200: the folder's name and classes make nnprobe detect ImageNet-R) and
OUT/imagenetv2-matched-frequency-format-val (the photos under their class index, ImageNetV2's layout). They
show the protocols at work; four photos measure nothing about a model.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(out: Path) -> None:
    from nnprobe.models.imagenet import imagenet_wnids
    from nnprobe.variants.protocols import subset_wnids

    wnids, r = imagenet_wnids(), set(subset_wnids("imagenet-r"))
    for folder in sorted((HERE / "imagenet").iterdir()):
        for photo in folder.iterdir():
            targets = [out / "val" / folder.name,
                       out / "imagenetv2-matched-frequency-format-val" / str(wnids.index(folder.name))]
            targets += [out / "imagenet-r" / folder.name] if folder.name in r else []
            for target in targets:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(photo, target / photo.name)


if __name__ == "__main__":
    if len(sys.argv) != 2 or Path(sys.argv[1]).exists():
        sys.exit("usage: python samples/make_variant_folders.py OUT (a folder that does not exist yet)")
    main(Path(sys.argv[1]))
