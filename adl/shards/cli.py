"""The shard stage's subcommands: generate, verify-shards, merge-shards, basicsr-train."""

from __future__ import annotations

import argparse


def cmd_generate(args) -> None:
    from adl.options import from_args
    from adl.shards.generate import generate
    from adl.shards.options import GenerateOptions

    manifest = generate(from_args(GenerateOptions, args))
    skipped = f"; {len(manifest['skipped'])} image(s) skipped, listed in manifest.json" if "skipped" in manifest else ""
    print(f"{manifest['total_samples']} pair(s) in {args.output} (provider {manifest['provider']}){skipped}")


def cmd_verify_shards(args) -> None:
    from adl.shards.format import verify_shards

    manifest = verify_shards(args.shard_dir)
    if manifest["options"]["format"] == "png":
        print(f"{args.shard_dir}: {manifest['total_samples']} PNG pair(s), all valid")
    elif manifest["options"]["format"] == "lmdb":
        print(f"{args.shard_dir}: {manifest['total_samples']} LMDB pair(s) in hr.lmdb and lr.lmdb, all valid")
    else:
        print(f"{args.shard_dir}: {len(manifest['shards'])} shard(s), {manifest['total_samples']} samples, all valid")


def cmd_merge_shards(args) -> None:
    from adl.shards.merge import merge_shards

    manifest = merge_shards(args.parts, args.output, move=args.move)
    print(f"{args.output}: {len(manifest['shards'])} shard(s), {manifest['total_samples']} samples from "
          f"{len(args.parts)} part(s)")


def cmd_basicsr_train(args) -> None:
    from adl.shards.basicsr import train

    train(args.opt, args.basicsr_args)


def register(sub) -> None:
    p = sub.add_parser("generate", help="(G(HR), HR) training pairs in bulk: HDF5 shards or PNG folders",
                       options="adl.shards.options:GenerateOptions")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("verify-shards", help="check the manifest, every shard's checksum, shapes and data (or PNG pairs)")
    p.add_argument("shard_dir")
    p.set_defaults(func=cmd_verify_shards)

    p = sub.add_parser("merge-shards", help="one shard folder from the finished parts of adl generate --part")
    p.add_argument("parts", nargs="+", metavar="PART_DIR", help="every part folder of one generation")
    p.add_argument("--output", required=True, help="SHARD_DIR; rerunning the same command resumes")
    p.add_argument("--move", action="store_true",
                   help="move the shard files instead of hard-linking them (the parts are emptied)")
    p.set_defaults(func=cmd_merge_shards)

    p = sub.add_parser("basicsr-train", help="train with BasicSR on an options file (adl's AdlShardDataset registered)")
    p.add_argument("-opt", required=True, metavar="OPTIONS_YML", help="BasicSR options file; experiments/ is made here")
    p.add_argument("basicsr_args", nargs=argparse.REMAINDER, metavar="...",
                   help="passed to BasicSR's own parser: --auto_resume, --debug, --force_yml KEY=VALUE ...")
    p.set_defaults(func=cmd_basicsr_train)
