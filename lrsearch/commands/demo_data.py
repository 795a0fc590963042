"""``lrsearch demo-data``: write the synthetic demo set."""

from __future__ import annotations

from pathlib import Path

from lrsearch.paths import DEMOS

NAME = "demo-data"
HELP = "write the synthetic demo NIfTI data set"
DESCRIPTION = (
    "Write a small deterministic synthetic head-MRI set named like IXI: IXI000_orig.nii.gz "
    "images with, for --task brain (the default), IXI000_brain.nii.gz brain masks, or, for "
    "--task tissue, IXI000_tissue.nii.gz labels (0 background, 1 CSF, 2 grey matter, "
    "3 white matter; partial-volume borders)."
)


def configure(parser) -> None:
    parser.add_argument("directory", type=Path)
    parser.add_argument("--subjects", type=int, default=None, help="number of subjects (12)")
    parser.add_argument("--size", type=int, default=None,
                        help="volume edge length in voxels (40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", choices=tuple(DEMOS), default="brain",
                        help="what the labels mark: brain (brain mask, the default) or tissue "
                             "(CSF, grey and white matter)")


def run(args) -> int:
    from lrsearch import demo

    kwargs = {"seed": args.seed, "task": args.task}
    if args.subjects is not None:
        kwargs["subjects"] = args.subjects
    if args.size is not None:
        kwargs["shape"] = (args.size,) * 3
    images = demo.write_demo_data(args.directory, **kwargs)
    if not args.quiet:
        what = "brain mask" if args.task == "brain" else "tissue labels"
        print(f"wrote {len(images)} subjects (image + {what}) to {args.directory}")
    return 0
