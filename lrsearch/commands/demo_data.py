"""``lrsearch demo-data``: write the synthetic demo set."""

from __future__ import annotations

from pathlib import Path

NAME = "demo-data"
HELP = "write the synthetic demo NIfTI data set"
DESCRIPTION = (
    "Write a small deterministic synthetic brain-extraction set named like IXI "
    "(IXI000_orig.nii.gz image, IXI000_brain.nii.gz brain mask, ...)."
)


def configure(parser) -> None:
    parser.add_argument("directory", type=Path)
    parser.add_argument("--subjects", type=int, default=None, help="number of subjects (12)")
    parser.add_argument("--size", type=int, default=None,
                        help="volume edge length in voxels (40)")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from lrsearch import demo

    kwargs = {"seed": args.seed}
    if args.subjects is not None:
        kwargs["subjects"] = args.subjects
    if args.size is not None:
        kwargs["shape"] = (args.size,) * 3
    images = demo.write_demo_data(args.directory, **kwargs)
    if not args.quiet:
        print(f"wrote {len(images)} subjects (image + brain mask) to {args.directory}")
    return 0
