"""Result tables and report figures (issue 5, items 4 and 5): ``adl table``, ``adl figure`` and the
``--tag``/``--json`` outputs they read. Inputs are written by hand, so every expected cell is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_error, run_cli
from PIL import Image
from skimage import data

from adl.cli import main
from adl.imageio import read_image, write_png
from adl.kernels import kernel_picture, synthetic_kernel
from adl.report import paper
from adl.report.figures import GAP, HEADER, legend_names

K0_NOTE = "k0 is the paper's kernel (bicubic; method.md §1)"


def note(kernel: str) -> str:
    return (f"{kernel} is our own kernel (method.md §1) and not the paper's random one: "
            f"only the pattern across kernels carries over")


# -- helpers ---------------------------------------------------------------------------------------
def cell(folder: Path, name: str, value: float, key: str = "psnr", **tags) -> Path:
    path = folder / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tags": {k: str(v) for k, v in tags.items()}, key: value}))
    return path


def table(capsys, kind: str, output: Path, files) -> tuple[str, str]:
    code, out, err = run_cli(capsys, ["table", "--kind", kind, "--output", output, *files])
    assert code == 0, err
    sibling = output.with_name(output.stem + "_vs_paper.csv")
    assert str(output) in out and str(sibling) in out
    return output.read_text(), sibling.read_text()


# -- 1. table1: layout, row order, formatting, vs_paper ----------------------------------------------
def test_table1_layout_order_and_paper_comparison(tmp_path, capsys):
    d = tmp_path / "in"
    files = [  # deliberately not in table order
        cell(d, "a", 31.0, method="lfl", scale=4, kernel="k2"),
        cell(d, "b", 45.8251, method="adl", scale=2, kernel="k0"),
        cell(d, "c", 42.0, method="lfl-gauss", scale=2, kernel="k2"),
        cell(d, "d", 45.1, method="adl", scale=2, kernel="k1"),
        cell(d, "e", 39.6449, method="bicubic", scale=2, kernel="k1"),
        cell(d, "f", 40.0, method="bicubic", scale=2, kernel="k0"),
        cell(d, "g", 38.5, method="avgpool", scale=2, kernel="k1"),
        cell(d, "h", 43.2, method="lfl", scale=2, kernel="k0"),
    ]
    got, vs = table(capsys, "table1", tmp_path / "results" / "table1.csv", files)
    assert got == ("scale,method,k0,k1,k2\n"
                   "2,bicubic,40.00,39.64,\n"
                   "2,avgpool,,38.50,\n"
                   "2,lfl,43.20,,\n"
                   "2,lfl-gauss,,,42.00\n"
                   "2,adl,45.83,45.10,\n"
                   "4,lfl,,,31.00\n")
    # Every cell the paper reports too (lfl-gauss is ours alone); diff = printed ours − printed paper,
    # so 45.8251 vs 45.83 is 0.00, not -0.00.
    assert vs.splitlines() == [
        "scale,method,kernel,ours,paper,diff,note",
        f"2,bicubic,k0,40.00,40.70,-0.70,{K0_NOTE}",
        f"2,bicubic,k1,39.64,39.64,0.00,{note('k1')}",
        f"2,avgpool,k1,38.50,38.54,-0.04,{note('k1')}",
        f"2,lfl,k0,43.20,43.16,0.04,{K0_NOTE}",
        f"2,adl,k0,45.83,45.83,0.00,{K0_NOTE}",
        f"2,adl,k1,45.10,45.61,-0.51,{note('k1')}",
        f"4,lfl,k2,31.00,39.66,-8.66,{note('k2')}",
    ]
    for line in vs.splitlines()[1:]:  # the arithmetic, independently
        ours, reported, diff = (float(v) for v in line.split(",")[3:6])
        assert diff == pytest.approx(ours - reported, abs=1e-9)


# -- 2. table3: the paper's row order (method by method, EDSR before RRDB) ---------------------------
def test_table3_rows_follow_the_paper(tmp_path, capsys):
    d = tmp_path / "in"
    files = []
    for i, (method, model) in enumerate([("adl", "rrdb"), ("lfl", "edsr"), ("oracle", "rrdb"), ("adl", "edsr"),
                                         ("bicubic", "rrdb"), ("oracle", "edsr"), ("bicubic", "edsr")]):
        for kernel in ("k3", "k0"):
            files.append(cell(d, f"x4_{method}_{model}_{kernel}", 20.0 + i + (kernel == "k3") / 4,
                              method=method, model=model, scale=4, kernel=kernel))
    files.append(cell(d, "x2", 33.0, method="adl", model="edsr", scale=2, kernel="k0"))
    got, vs = table(capsys, "table3", tmp_path / "table3.csv", files)
    assert got == ("scale,model,method,k0,k3\n"
                   "2,edsr,adl,33.00,\n"
                   "4,edsr,bicubic,26.00,26.25\n"
                   "4,rrdb,bicubic,24.00,24.25\n"
                   "4,edsr,oracle,25.00,25.25\n"
                   "4,rrdb,oracle,22.00,22.25\n"
                   "4,edsr,lfl,21.00,21.25\n"
                   "4,edsr,adl,23.00,23.25\n"
                   "4,rrdb,adl,20.00,20.25\n")
    rows = [line.split(",") for line in vs.splitlines()]
    assert rows[0] == ["scale", "model", "method", "kernel", "ours", "paper", "diff", "note"]
    # Paper values read off Table 3 (×4 columns k0 and k3); no LFL + RRDB row exists there.
    assert [r[:6] for r in rows[1:]] == [
        ["2", "edsr", "adl", "k0", "33.00", "34.07"],
        ["4", "edsr", "bicubic", "k0", "26.00", "28.92"], ["4", "edsr", "bicubic", "k3", "26.25", "24.21"],
        ["4", "rrdb", "bicubic", "k0", "24.00", "29.45"], ["4", "rrdb", "bicubic", "k3", "24.25", "24.22"],
        ["4", "edsr", "oracle", "k0", "25.00", "28.92"], ["4", "edsr", "oracle", "k3", "25.25", "27.79"],
        ["4", "rrdb", "oracle", "k0", "22.00", "29.45"], ["4", "rrdb", "oracle", "k3", "22.25", "28.08"],
        ["4", "edsr", "lfl", "k0", "21.00", "27.45"], ["4", "edsr", "lfl", "k3", "21.25", "26.65"],
        ["4", "edsr", "adl", "k0", "23.00", "28.16"], ["4", "edsr", "adl", "k3", "23.25", "26.82"],
        ["4", "rrdb", "adl", "k0", "20.00", "28.55"], ["4", "rrdb", "adl", "k3", "20.25", "27.00"],
    ]
    assert [r[6] for r in rows[1:4]] == ["-1.07", "-2.92", "2.04"]
    assert [r[7] for r in rows[1:4]] == [K0_NOTE, K0_NOTE, note("k3")]


def test_paper_module_holds_the_values_of_method_md():
    """method.md §8, transcribed separately here."""
    x2 = {("2", "adl"): [45.83, 45.61, 46.34, 44.86, 46.41], ("2", "lfl"): [43.16, 42.03, 43.30, 43.69, 43.75],
          ("2", "bicubic"): [40.70, 39.64, 35.79, 37.88, 37.22]}
    for key, values in x2.items():
        assert [paper.TABLE1[key][k] for k in paper.KERNELS] == values
    sr = {("2", "edsr", "adl"): [34.07, 33.68, 32.51, 32.08, 32.05],
          ("2", "edsr", "oracle"): [34.61, 34.44, 33.64, 33.23, 33.27],
          ("2", "edsr", "bicubic"): [34.61, 31.51, 27.76, 27.91, 27.95]}
    for key, values in sr.items():
        assert [paper.TABLE3[key][k] for k in paper.KERNELS] == values


# -- 3. kernels: any method name, natural kernel order, 4 decimals --------------------------------
def test_kernel_table_orders_methods_and_kernels(tmp_path, capsys):
    d = tmp_path / "in"
    files = [cell(d, "1", 0.912345, "similarity", method="pairs", scale=2, kernel="k10"),
             cell(d, "2", 0.95, "similarity", method="adl", scale=2, kernel="k4"),
             cell(d, "3", 0.8, "similarity", method="lfl", scale=2, kernel="k2"),
             cell(d, "4", 0.7, "similarity", method="custom", scale=2, kernel="k1"),
             cell(d, "5", 0.99996, "similarity", method="adl", scale=2, kernel="k1")]
    got, vs = table(capsys, "kernels", tmp_path / "kernels.csv", files)
    assert got == ("scale,method,k1,k2,k4,k10\n"
                   "2,lfl,,0.8000,,\n"
                   "2,adl,1.0000,,0.9500,\n"
                   "2,custom,0.7000,,,\n"
                   "2,pairs,,,,0.9123\n")
    # The paper's one similarity value: Table 6(a), ADL ×2, k4, T = 80 epochs.
    assert vs == f"scale,method,kernel,ours,paper,diff,note\n2,adl,k4,0.9500,0.9718,-0.0218,{note('k4')}\n"


def test_kernels_named_outside_the_paper_have_no_comparison(tmp_path, capsys):
    files = [cell(tmp_path, "canon", 30.5, method="adl", scale=2, kernel="canon")]
    got, vs = table(capsys, "table1", tmp_path / "t.csv", files)
    assert got == "scale,method,canon\n2,adl,30.50\n"
    assert vs == "scale,method,kernel,ours,paper,diff,note\n"


# -- 4. bad input: one line naming the file, nothing written ----------------------------------------
def test_duplicate_cells_and_missing_tags_name_the_file(tmp_path, capsys):
    out = tmp_path / "t.csv"
    a = cell(tmp_path, "a", 40.0, method="adl", scale=2, kernel="k1")
    b = cell(tmp_path, "b", 41.0, method="adl", scale=2, kernel="k1")
    line = assert_one_error(capsys, ["table", "--kind", "table1", "--output", out, a, b], a, b)
    assert "scale=2, method=adl, kernel=k1" in line

    no_kernel = cell(tmp_path, "nokernel", 40.0, method="adl", scale=2)
    assert_one_error(capsys, ["table", "--kind", "table1", "--output", out, a, no_kernel], no_kernel, "'kernel'",
                     "--tag kernel=")
    no_model = cell(tmp_path, "nomodel", 30.0, method="adl", scale=2, kernel="k0")
    assert_one_error(capsys, ["table", "--kind", "table3", "--output", out, no_model], no_model, "'model'")
    untagged = tmp_path / "untagged.json"
    untagged.write_text(json.dumps({"psnr": 30.0}))
    assert_one_error(capsys, ["table", "--kind", "table1", "--output", out, untagged], untagged, "tags")
    assert not out.exists() and not (tmp_path / "t_vs_paper.csv").exists()


def test_other_bad_inputs_name_the_file(tmp_path, capsys):
    out = tmp_path / "t.csv"
    args = ["table", "--kind", "table3", "--output", out]
    wrong = cell(tmp_path, "wrong", 30.0, method="kernelgan", model="edsr", scale=2, kernel="k0")
    assert_one_error(capsys, [*args, wrong], wrong, "kernelgan", "bicubic, oracle, lfl, adl")
    model = cell(tmp_path, "model", 30.0, method="adl", model="swinir", scale=2, kernel="k0")
    assert_one_error(capsys, [*args, model], model, "swinir")
    scale = cell(tmp_path, "scale", 30.0, method="adl", model="edsr", scale="x2", kernel="k0")
    assert_one_error(capsys, [*args, scale], scale, "scale")
    kernel_result = cell(tmp_path, "sim", 0.9, "similarity", method="adl", model="edsr", scale=2, kernel="k0")
    assert_one_error(capsys, [*args, kernel_result], kernel_result, '"psnr"')
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert_one_error(capsys, [*args, garbage], garbage, "JSON")
    assert_one_error(capsys, [*args, tmp_path / "absent.json"], tmp_path / "absent.json")
    assert_one_error(capsys, ["table", "--kind", "table2", "--output", out, garbage], "--kind", code=2)
    assert not out.exists()


# -- 5. the tagged JSON outputs of psnr, kernel-similarity and evaluate-sr --------------------------
def _reference_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


def test_psnr_json_with_tags_round_trips_into_table1(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pred, target = tmp_path / "pred", tmp_path / "target"
    expected = {}
    for name, (y, x) in {"astronaut": (40, 160), "coffee": (100, 200)}.items():
        truth = getattr(data, name)()[y : y + 24, x : x + 30]
        noisy = np.clip(truth + rng.normal(0, 3, truth.shape).round(), 0, 255).astype(np.uint8)
        write_png(target / f"{name}.png", truth)
        write_png(pred / f"{name}.png", noisy)
        expected[name] = _reference_psnr(noisy[2:-2, 2:-2], truth[2:-2, 2:-2])
    result = tmp_path / "psnr.json"
    code, out, err = run_cli(capsys, ["psnr", "--pred", pred, "--target", target, "--shave", 2, "--json", result,
                                      "--tag", "method=adl", "--tag", "scale=2", "--tag", "kernel=k3",
                                      "--tag", "note=a=b"])
    assert code == 0, err
    got = json.loads(result.read_text())
    assert set(got) == {"tags", "psnr", "shave", "per_image"}
    assert got["tags"] == {"method": "adl", "scale": "2", "kernel": "k3", "note": "a=b"}  # split at the first =
    assert got["shave"] == 2
    assert [r["image"] for r in got["per_image"]] == ["astronaut", "coffee"]
    for row in got["per_image"]:
        assert row["psnr"] == pytest.approx(expected[row["image"]], abs=0.01)
    mean = np.mean(list(expected.values()))
    assert got["psnr"] == pytest.approx(mean, abs=0.01) and out.strip() == f"{got['psnr']:.4f}"

    text, _ = table(capsys, "table1", tmp_path / "table1.csv", [result])
    assert text == f"scale,method,k3\n2,adl,{got['psnr']:.2f}\n"


def test_malformed_or_repeated_tags(tmp_path, capsys):
    pred = tmp_path / "p"
    write_png(pred / "a.png", data.coffee()[:20, :20])
    base = ["psnr", "--pred", pred, "--target", pred, "--shave", 1, "--json", tmp_path / "r.json"]
    assert_one_error(capsys, [*base, "--tag", "method"], "--tag", "KEY=VALUE", code=2)
    assert_one_error(capsys, [*base, "--tag", "=adl"], "--tag", code=2)
    assert_one_error(capsys, [*base, "--tag", "method=adl", "--tag", "method=lfl"], "--tag method", "given twice")
    assert not (tmp_path / "r.json").exists()
    assert_one_error(capsys, ["kernel-similarity", "a.npy", "b.npy", "--tag", "x"], "--tag", code=2)


def test_kernel_similarity_json_round_trips_into_the_kernel_table(tmp_path, capsys):
    true = synthetic_kernel("k3", 2)
    shifted = np.zeros((24, 24))
    shifted[3:23, 1:21] = true  # the same blur, moved and padded: similarity 1
    a, b = tmp_path / "true.npy", tmp_path / "ret.npy"
    np.save(a, true)
    np.save(b, shifted)
    result = tmp_path / "sim.json"
    code, out, err = run_cli(capsys, ["kernel-similarity", a, b, "--json", result, "--tag", "method=adl",
                                      "--tag", "scale=2", "--tag", "kernel=k3"])
    assert code == 0, err
    got = json.loads(result.read_text())
    assert got["tags"] == {"method": "adl", "scale": "2", "kernel": "k3"}
    assert (got["a"], got["b"]) == (str(a), str(b))
    assert got["similarity"] == pytest.approx(1.0, abs=1e-12) and out.strip() == f"{got['similarity']:.6f}"
    text, _ = table(capsys, "kernels", tmp_path / "kernels.csv", [result])
    assert text == "scale,method,k3\n2,adl,1.0000\n"


def test_evaluate_sr_stores_its_tags_for_table3(tmp_path, capsys):
    hr, test_hr, test_lr = tmp_path / "hr", tmp_path / "test_hr", tmp_path / "test_lr"
    write_png(hr / "a.png", data.astronaut()[40:88, 160:208])
    image = data.coffee()[100:140, 200:240]
    write_png(test_hr / "c.png", image)
    write_png(test_lr / "c.png", np.asarray(Image.fromarray(image).resize((20, 20), Image.BICUBIC)))
    run = tmp_path / "run"
    assert main(["-q", "train-sr", "--hr", str(hr), "--lr-source", "bicubic", "--output", str(run), "--iterations", "1",
                 "--n-feats", "4", "--n-blocks", "1", "--hr-patch", "16", "--batch-size", "1",
                 "--device", "cpu"]) == 0
    metrics = tmp_path / "metrics.json"
    code, _, err = run_cli(capsys, ["evaluate-sr", "--checkpoint", run, "--lr", test_lr, "--hr", test_hr,
                                    "--scale", 2, "--output", metrics, "--device", "cpu", "--tag", "method=bicubic",
                                    "--tag", "model=edsr", "--tag", "scale=2", "--tag", "kernel=k0"])
    assert code == 0, err
    got = json.loads(metrics.read_text())
    assert got["tags"] == {"method": "bicubic", "model": "edsr", "scale": "2", "kernel": "k0"}
    text, vs = table(capsys, "table3", tmp_path / "table3.csv", [metrics])
    assert text == f"scale,model,method,k0\n2,edsr,bicubic,{got['psnr']:.2f}\n"
    assert vs.splitlines()[1].split(",")[:6] == ["2", "edsr", "bicubic", "k0", f"{got['psnr']:.2f}", "34.61"]


# -- 6. figures ------------------------------------------------------------------------------------
def test_kernel_figure_is_both_kernels_at_one_size(tmp_path, capsys):
    true, retrieved = synthetic_kernel("k0", 2), synthetic_kernel("k1", 2)  # 8×8 and 20×20
    a, b, fig = tmp_path / "k0.npy", tmp_path / "k1.npy", tmp_path / "fig.png"
    np.save(a, true)
    np.save(b, retrieved)
    code, _, err = run_cli(capsys, ["figure", "kernels", "--output", fig, "--true", a, "--retrieved", b,
                                    "--cell", 4])
    assert code == 0, err
    got = read_image(fig)
    assert got.shape == (20 * 4, 2 * 20 * 4 + GAP, 3)
    left, gap, right = got[:, :80], got[:, 80 : 80 + GAP], got[:, 80 + GAP :]
    assert (gap == 255).all()
    assert np.array_equal(right, kernel_picture(retrieved, 4))
    # The 8×8 kernel sits in the middle of a black 20×20 field, on its own colour scale.
    assert np.array_equal(left[24:56, 24:56], kernel_picture(true, 4))
    inner = np.zeros(left.shape[:2], bool)
    inner[24:56, 24:56] = True
    assert (left[~inner] == 0).all()

    labelled = tmp_path / "labelled.png"
    assert main(["-q", "figure", "kernels", "--output", str(labelled), "--true", str(a), "--retrieved", str(b),
                 "--cell", "4", "--label", "x2 k1"]) == 0
    with_label = read_image(labelled)
    assert with_label.shape == (80 + HEADER, 168, 3)
    assert np.array_equal(with_label[HEADER:], got) and (with_label[:HEADER] < 255).any()


def test_crops_strip_is_the_exact_crops(tmp_path, capsys):
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (51, 70, 3), dtype=np.uint8)  # odd height: cropped to 50 at ×2
    lr = rng.integers(0, 256, (25, 35, 3), dtype=np.uint8)
    sr = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    paths = {}
    for name, image in (("lr", lr), ("sr", sr), ("hr", hr)):
        paths[name] = tmp_path / f"{name}.png"
        write_png(paths[name], image)
    base = ["figure", "crops", "--lr", paths["lr"], "--sr", paths["sr"], "--hr", paths["hr"]]
    up = np.asarray(Image.fromarray(lr).resize((70, 50), Image.NEAREST))  # independent nearest upscale

    def strip(y, x, size):
        white = np.full((size, GAP, 3), 255, np.uint8)
        return np.concatenate([up[y : y + size, x : x + size], white, sr[y : y + size, x : x + size], white,
                               hr[y : y + size, x : x + size]], axis=1)

    fig = tmp_path / "crops.png"
    code, _, err = run_cli(capsys, [*base, "--output", fig, "--size", 16, "--at", "3,5", "--at", "30,41"])
    assert code == 0, err
    expected = np.concatenate([strip(3, 5, 16), np.full((GAP, 3 * 16 + 2 * GAP, 3), 255, np.uint8),
                               strip(30, 41, 16)], axis=0)
    assert np.array_equal(read_image(fig), expected)

    # Default: the largest square up to 96 (here the 50 rows), centred and on the LR grid.
    code, _, err = run_cli(capsys, [*base, "--output", fig])
    assert code == 0, err
    assert np.array_equal(read_image(fig), strip(0, 10, 50))

    assert_one_error(capsys, [*base, "--output", tmp_path / "x.png", "--size", 16, "--at", "40,0"], "--at 40,0")
    assert_one_error(capsys, [*base, "--output", tmp_path / "x.png", "--size", 60], "--size 60")
    assert_one_error(capsys, [*base, "--output", tmp_path / "x.png", "--at", "4"], "--at", code=2)
    write_png(paths["sr"], sr[:48])
    assert_one_error(capsys, [*base, "--output", tmp_path / "x.png"], paths["sr"])
    assert not (tmp_path / "x.png").exists()


def test_curves_figure_one_subplot_per_numeric_column(tmp_path, capsys):
    down, sr = tmp_path / "down_adl" / "log.csv", tmp_path / "sr_edsr" / "log.csv"
    down.parent.mkdir()
    sr.parent.mkdir()
    down.write_text("iteration,loss_d,loss_g_adv,loss_data,data_term,seconds\n"
                    "2,0.5,0.7,0.1,lfl,1.0\n4,0.4,0.8,0.05,lfl+kernel,2.0\n")
    sr.write_text("iteration,loss_l1,lr,val_psnr,seconds\n2,0.2,0.0001,,1.0\n4,0.1,0.0001,25.5,2.0\n")
    fig = tmp_path / "curves.png"
    code, out, err = run_cli(capsys, ["figure", "curves", "--output", fig, down, sr])
    assert code == 0, err
    assert "loss_d, loss_g_adv, loss_data, loss_l1, lr, val_psnr" in out  # data_term is text: no subplot
    with Image.open(fig) as img:
        assert img.format == "PNG" and img.size == (3 * 400, 2 * 300)

    empty = tmp_path / "empty" / "log.csv"
    empty.parent.mkdir()
    empty.write_text("iteration,loss_l1,seconds\n")
    assert_one_error(capsys, ["figure", "curves", "--output", tmp_path / "x.png", empty], empty)
    assert not (tmp_path / "x.png").exists()


def test_legend_names_grow_until_unique():
    assert legend_names([Path("r/x2/k1/adl/log.csv"), Path("r/x2/k2/adl/log.csv")]) == ["k1/adl", "k2/adl"]
    assert legend_names([Path("a/down/log.csv"), Path("a/sr/log.csv")]) == ["down", "sr"]


def test_legend_names_are_the_data_terms_of_downsampler_runs(tmp_path):
    """The workflow's folders are named down-<term>-<hash>: the legend names the term, unless two runs share it."""
    paths = []
    for folder, term in (("down-adl-6c9f46c5", "adl"), ("down-bicubic-6c9f46c5", "bicubic")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text(json.dumps({"options": {"data_loss": term}}))
        paths.append(tmp_path / folder / "log.csv")
    assert legend_names(paths) == ["adl", "bicubic"]
    (tmp_path / "down-bicubic-6c9f46c5" / "config.json").write_text(json.dumps({"options": {"data_loss": "adl"}}))
    assert legend_names(paths) == ["down-adl-6c9f46c5", "down-bicubic-6c9f46c5"]
