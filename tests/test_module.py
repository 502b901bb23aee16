"""adl's workflow used as a Snakemake module by another workflow (examples/module), and the rules'
software environment, which must work from a module's copy of the env file."""

from __future__ import annotations

import hashlib
import re
import shutil

import h5py
import numpy as np
import yaml
from PIL import Image
from test_workflow import REPO, snakemake


def test_an_outer_workflow_trains_exports_and_generates_shards_for_its_own_hr_folder(tmp_path):
    outer = tmp_path / "outer"
    shutil.copytree(REPO / "examples" / "module", outer)
    config = yaml.safe_load((outer / "config.yaml").read_text())
    config["adl_workflow"] = str(REPO / "Snakefile")
    (outer / "config.yaml").write_text(yaml.safe_dump(config))
    rng = np.random.default_rng(0)
    photos = {}
    (outer / "my_hr").mkdir()
    for name in ("one", "two", "three"):
        photos[name] = rng.integers(0, 256, (48, 40, 3), np.uint8)
        Image.fromarray(photos[name]).save(outer / "my_hr" / f"{name}.png")

    snakemake(outer)  # the example's default target
    shards = outer / "my_shards" / "x2-k0-adl"
    check = snakemake(outer, "-n")
    assert "Nothing to be done" in check.stdout + check.stderr

    from adl.shards.format import verify_shards

    manifest = verify_shards(shards)
    per_image = config["adl"]["generate"]["patches_per_image"]
    assert manifest["total_samples"] == len(photos) * per_image
    patch = config["adl"]["generate"]["patch"]
    seen = []
    for entry in manifest["shards"]:
        with h5py.File(shards / entry["file"]) as f:
            assert f.attrs["scale"] == 2
            for hr, lr, source, (y, x) in zip(f["hr"][:], f["lr"][:], f["source"][:], f["offset"][:]):
                name = source.decode() if isinstance(source, bytes) else source
                # Every HR patch is cut from the outer workflow's own photos, at the offset it records.
                assert np.array_equal(hr, photos[name][y:y + patch, x:x + patch])
                assert lr.shape == (patch // 2, patch // 2, 3)
                seen.append(name)
    assert sorted(set(seen)) == sorted(photos)
    # The G that made them is the module's trained and exported ADL downsampler.
    model = outer / manifest["model"]["path"]
    assert model.name == "G.onnx" and "/x2/k0/down-adl-" in str(model)
    assert manifest["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


def test_the_rules_environment_installs_the_pinned_release_without_a_path_or_snakemake():
    env = yaml.safe_load((REPO / "workflow" / "envs" / "adl.yaml").read_text())
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert [p for p in pip if p.startswith("adl")] == [f"adl[cpu]=={version}"]
    # A module's env file is copied away from this repository: no relative or editable installs.
    assert not any(p.startswith(("-e", ".", "/", "file:")) or ".." in p for p in pip)
    # The jobs run adl, not the workflow manager.
    assert not any("snakemake" in d for d in conda + pip)
