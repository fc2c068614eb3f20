"""Sweet Home 3D libraries: catalogue, licences, classes and builds, on small .sh3f files made from the CC0 fixtures."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shapelatent.cli.main import app
from shapelatent.data.build import SamplingConfig
from shapelatent.data.format import ShapeDataset
from shapelatent.data.sources.sweethome3d import (
    CLASSES,
    build_sweethome3d,
    classify,
    find_archives,
    license_from_text,
    read_catalog,
)
from shapelatent.errors import ArchiveError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "meshes"
ROT_X90 = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0)  # 90 degrees about +X: y' = -z, z' = y
CC_BY_FILE = (
    'Thank you for downloading "Desklamp" by ColdShiverGames\nReleased under\nCreative Commons Attribution 3.0\n'
    "Downloaded from somewhere\n... The blend author is violating a Creative Commons License or copyright ...\n"
)
LINES_OBJ = "v 0 0 0\nv 0 10 0\nv 10 10 0\nl 1 2\nl 2 3\n"


def _model(fixture: str) -> dict[str, bytes]:
    return {
        "obj": (FIXTURES / fixture / "model.obj").read_bytes(),
        "mtl": (FIXTURES / fixture / "model.mtl").read_bytes(),
    }


def _item(n: int, key: str, name: str, category: str, model: str, *, tags: str = "", creator: str = "", **more) -> str:
    lines = [
        f"id#{n}=Test#{key}",
        f"name#{n}={name}",
        f"tags#{n}={tags}",
        f"category#{n}={category}",
        f"model#{n}=/{model}",
        f"width#{n}=50.5",
        f"depth#{n}=60",
        f"height#{n}=70",
        f"creator#{n}={creator}",
    ]
    lines += [f"{k}#{n}={v}" for k, v in more.items()]
    return "\n".join(lines)


def make_sh3f(
    path: Path,
    library_id: str,
    items: list[str],
    files: dict[str, bytes],
    license: str = "Public domain",
    license_txt: str = "This file is under the Creative Commons Zero (Public Domain)\nlicense.\n",
):
    """A .sh3f: PluginFurnitureCatalog.properties (Latin-1, as Java writes it), LICENSE.TXT and the given files."""
    props = "\n".join(
        [
            "# Test catalogue",
            f"id={library_id}",
            "name=Test library",
            "description=Made in a test",
            "version=1.0",
            f"license={license}",
            "provider=tests",
            "dropOnTopElevation#-1",  # Scopia's malformed line: a key without a value, index -1
            "",
            *items,
        ]
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("PluginFurnitureCatalog.properties", props.encode("latin-1"))
        zf.writestr("LICENSE.TXT", license_txt)
        for name, data in files.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def library(tmp_path) -> Path:
    chair, table, lamp = _model("deck_chair"), _model("technical_table"), _model("desk_lamp")
    hostile_mtl = chair["mtl"] + b"\nmap_Kd /etc/passwd\nmap_Ka ../../secret.png\n"
    files = {
        "lib/deckChair/deckChair.obj": chair["obj"].replace(b"mtllib model.mtl", b"mtllib deckChair.mtl"),
        "lib/deckChair/deckChair.mtl": hostile_mtl,
        "lib/table/table.obj": b"mtllib /etc/passwd\n" + table["obj"],
        "lib/table/model.mtl": table["mtl"],
        "lib/lamp/lamp.obj": lamp["obj"],
        "lib/lamp/model.mtl": lamp["mtl"],
        "lib/lamp/BLENDSWAP_LICENSE.txt": CC_BY_FILE.encode(),
        "lib/light/light.obj": LINES_OBJ.encode(),
    }
    items = [
        _item(
            1,
            "deckChair",
            "Deck chair",
            "Exterior",
            "lib/deckChair/deckChair.obj",
            tags="Seat, Outdoor",
            creator="BigMouse",
        ),
        _item(2, "table", "Technical table", "Office", "lib/table/table.obj", creator="Redsymbzone"),
        _item(3, "lamp", "Desk lamp", "Lights", "lib/lamp/lamp.obj", creator="ColdShiverGames"),
        _item(4, "bookcase", "Bookcase", "Living room", "lib/bookcase/bookcase.obj", creator="Nobody"),
        _item(5, "light", "Ceiling light", "Lights", "lib/light/light.obj", creator="Nobody"),
        _item(6, "train", "Toy \\u00e9train", "Bedroom", "lib/table/table.obj", creator="Toy\\\n    maker"),
        _item(
            7,
            "tilted",
            "Chair",
            "Living room",
            "lib/deckChair/deckChair.obj",
            creator="BigMouse",
            modelRotation="1 0 0 0 0 -1 0 1 0",
        ),
    ]
    return make_sh3f(tmp_path / "Test.sh3f", "Tests#Lib", items, files)


def _cfg(seed: int = 0) -> SamplingConfig:
    return SamplingConfig(num_points=128, seed=seed)


def test_read_catalog(library):
    cat = read_catalog(library)
    assert (cat.id, cat.name, cat.version, cat.license_text, cat.license) == (
        "Tests#Lib",
        "Test library",
        "1.0",
        "Public domain",
        "CC0-1.0",
    )
    assert len(cat.sha256) == 64 and cat.rejected == [] and cat.problems == []
    by_id = {it.id: it for it in cat.items}
    assert [it.index for it in cat.items] == [1, 2, 3, 4, 5, 6, 7]
    chair = by_id["Test#deckChair"]
    assert (chair.name, chair.category, chair.tags, chair.model, chair.creator) == (
        "Deck chair",
        "Exterior",
        ("Seat", "Outdoor"),
        "lib/deckChair/deckChair.obj",
        "BigMouse",
    )
    assert (chair.width, chair.depth, chair.height, chair.rotation, chair.cls) == (50.5, 60.0, 70.0, None, "chair")
    assert by_id["Test#tilted"].rotation == ROT_X90
    # the per-item licence file overrides the library licence
    lamp = by_id["Test#lamp"]
    assert (lamp.license, lamp.license_source, lamp.cls) == ("CC-BY-3.0", "lib/lamp/BLENDSWAP_LICENSE.txt", "lamp")
    assert (chair.license, chair.license_source) == ("CC0-1.0", "library")
    # \u escapes and continuation lines are decoded as Java does
    train = by_id["Test#train"]
    assert (train.name, train.creator, train.cls) == ("Toy étrain", "Toymaker", "other")
    assert {it.cls for it in cat.items} == {"chair", "table", "lamp", "cabinet_shelf", "other"}


def test_read_catalog_rejects_unusable_entries(tmp_path):
    items = [
        _item(1, "ok", "Chair", "Living room", "m/a.obj"),
        "name#2=No model",
        _item(3, "rot", "Chair", "Living room", "m/a.obj", modelRotation="1 0 0"),
        _item(4, "ok", "Chair", "Living room", "m/a.obj"),
    ]
    cat = read_catalog(make_sh3f(tmp_path / "x.sh3f", "L", items, {"m/a.obj": b"v 0 0 0\n"}))
    assert [it.id for it in cat.items] == ["Test#ok", "Test#ok@4"]
    assert [r["reason"] for r in cat.rejected] == [
        "no name#N or model#N key; not a furniture item",
        "modelRotation '1 0 0' is not 9 numbers",
    ]
    assert cat.rejected[0]["source"] == "x.sh3f!PluginFurnitureCatalog.properties item #2"
    assert "id 'Test#ok' is used twice" in cat.problems[0]


def test_library_licence_conflicts_and_unknown_licence_files(tmp_path):
    items = [_item(1, "a", "Chair", "Living room", "m/a.obj"), _item(2, "b", "Chair", "Living room", "n/b.obj")]
    files = {"m/a.obj": b"f 1 2 3\n", "n/b.obj": b"f 1 2 3\n", "n/LICENSE.txt": b"All rights reserved."}
    arc = make_sh3f(tmp_path / "x.sh3f", "L", items, files, license="Creative Commons Attribution 3.0 license")
    cat = read_catalog(arc)
    # LICENSE.TXT says CC0, the catalogue key CC-BY: the stricter one wins, and the conflict is reported
    assert cat.license == "CC-BY-3.0"
    assert "LICENSE.TXT says CC0-1.0, the catalogue's license key CC-BY-3.0; using CC-BY-3.0" in cat.problems[0]
    # a licence file that says nothing recognisable keeps the library licence, and is reported
    assert [(it.license, it.license_source) for it in cat.items] == [("CC-BY-3.0", "library")] * 2
    assert "licence file(s) ['n/LICENSE.txt'] not understood" in cat.problems[1]
    # neither LICENSE.TXT nor key recognised: the key's text is kept as it is
    odd = make_sh3f(tmp_path / "y.sh3f", "L", items, files, license="Free for all", license_txt="Hello")
    assert read_catalog(odd).license == "Free for all"


def test_read_catalog_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.sh3f: no such Sweet Home 3D library"):
        read_catalog(tmp_path / "nope.sh3f")
    junk = tmp_path / "junk.sh3f"
    junk.write_bytes(b"PK but not really")
    with pytest.raises(ArchiveError, match="junk.sh3f: not a Sweet Home 3D library"):
        read_catalog(junk)
    with zipfile.ZipFile(tmp_path / "home.sh3d", "w") as zf:
        zf.writestr("Home.xml", "<home/>")
    with pytest.raises(ArchiveError, match=r"home.sh3d: no PluginFurnitureCatalog.properties in the archive"):
        read_catalog(tmp_path / "home.sh3d")


def test_build(library, tmp_path):
    out = tmp_path / "ds"
    done = []
    res = build_sweethome3d([library], out, sampling=_cfg(), workers=1, progress=done.append)
    ds = ShapeDataset(out)
    ids = [m["id"] for m in ds.meta]
    assert ids == ["Tests#Lib/Test#deckChair", "Tests#Lib/Test#table", "Tests#Lib/Test#lamp", "Tests#Lib/Test#tilted"]
    assert ds.points.shape == (4, 128, 3) and res.built == 4 and sum(done) == 6  # 4 built + 2 skipped
    assert ds.info["classes"] == {"chair": 2, "lamp": 1, "table": 1}
    lamp = ds.meta[2]
    assert (lamp["source"], lamp["class"], lamp["license"], lamp["creator"]) == (
        "Test.sh3f!lib/lamp/lamp.obj",
        "lamp",
        "CC-BY-3.0",
        "ColdShiverGames",
    )
    extra = json.loads(lamp["extra"])
    assert extra == {
        "library": "Tests#Lib",
        "item_id": "Test#lamp",
        "name": "Desk lamp",
        "category": "Lights",
        "tags": [],
        "width_cm": 50.5,
        "depth_cm": 60.0,
        "height_cm": 70.0,
        "license_source": "lib/lamp/BLENDSWAP_LICENSE.txt",
    }
    # skipped items, with sources that name the archive and member, and their reasons
    report = json.loads((out / "build_report.json").read_text())
    assert report["built"] == 4
    assert report["skipped"] == [
        {
            "source": "Test.sh3f!lib/bookcase/bookcase.obj",
            "reason": "model lib/bookcase/bookcase.obj is not in the archive",
        },
        {
            "source": "Test.sh3f!lib/light/light.obj",
            "reason": "the OBJ has no faces (only points or lines, e.g. a light marker); nothing to sample",
        },
    ]
    assert res.skipped == report["skipped"] and ds.info["skipped"] == 2
    src = ds.info["source"]
    assert src["kind"] == "sweethome3d"
    assert src["archives"] == [{"name": "Test.sh3f", "sha256": read_catalog(library).sha256}]
    assert src["libraries"][0]["id"] == "Tests#Lib" and src["libraries"][0]["license"] == "CC0-1.0"
    assert src["excluded_by_class"] == {"other": 1}
    # attribution: the CC-BY creator is credited, every item is listed
    attribution = (out / "ATTRIBUTION.md").read_text()
    assert "- **ColdShiverGames** (CC-BY-3.0): Desk lamp" in attribution
    assert "| `Tests#Lib/Test#deckChair` | Deck chair | BigMouse | CC0-1.0 | library |" in attribution
    assert "Bookcase" not in attribution  # only items in the dataset
    # the extraction folder is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Test.sh3f", "ds"]


def test_model_rotation_is_applied(tmp_path):
    """Same mesh, same seed: the rotated item's cloud is the plain one turned by modelRotation (v' = M v)."""
    chair = _model("deck_chair")
    files = {"m/c.obj": chair["obj"], "m/model.mtl": chair["mtl"]}
    plain = make_sh3f(tmp_path / "a.sh3f", "A", [_item(1, "c", "Chair", "Living room", "m/c.obj")], files)
    turned = make_sh3f(
        tmp_path / "b.sh3f",
        "B",
        [_item(1, "c", "Chair", "Living room", "m/c.obj", modelRotation="1 0 0 0 0 -1 0 1 0")],
        files,
    )
    build_sweethome3d([plain], tmp_path / "a", sampling=_cfg(3), workers=1)
    build_sweethome3d([turned], tmp_path / "b", sampling=_cfg(3), workers=1)
    a, b = ShapeDataset(tmp_path / "a"), ShapeDataset(tmp_path / "b")
    m = np.array(ROT_X90).reshape(3, 3)
    # bbox centring and unit-sphere scaling commute with a 90-degree rotation about an axis
    np.testing.assert_allclose(b.points[0], a.points[0] @ m.T, atol=1e-5)
    np.testing.assert_allclose(b.normals[0], a.normals[0] @ m.T, atol=1e-5)
    assert not np.allclose(a.points[0], b.points[0], atol=0.05)
    # the deck chair is longer along Z (depth) than tall along Y; turned, it is taller than deep
    ext_a, ext_b = np.ptp(a.points[0], axis=0), np.ptp(b.points[0], axis=0)
    assert ext_a[2] > ext_a[1] and ext_b[1] > ext_b[2]


def test_classes_subset_include_other_and_unknown_class(library, tmp_path):
    res = build_sweethome3d([library], tmp_path / "lamps", classes=["lamp"], sampling=_cfg(), workers=1)
    ds = ShapeDataset(tmp_path / "lamps")
    assert ds.classes() == ["lamp"] and res.built == 1
    assert [s["source"] for s in res.skipped] == ["Test.sh3f!lib/light/light.obj"]  # the other lamp: no faces
    assert ds.info["source"]["classes"] == ["lamp"]

    build_sweethome3d([library], tmp_path / "all", include_other=True, sampling=_cfg(), workers=1)
    all_ = ShapeDataset(tmp_path / "all")
    assert sorted(all_.classes()) == ["chair", "chair", "lamp", "other", "table"]
    assert json.loads(all_.meta[3]["extra"])["name"] == "Toy étrain"

    with pytest.raises(
        ValueError, match=r"unknown Sweet Home 3D classes \['chairs', 'sofa'\]; choose from chair, stool"
    ):
        build_sweethome3d([library], tmp_path / "x", classes=["chairs", "sofa", "lamp"], sampling=_cfg())
    assert not (tmp_path / "x").exists()


def test_extraction_is_sanitised_and_kept_in_cache_dir(library, tmp_path):
    cache = tmp_path / "cache"
    build_sweethome3d([library], tmp_path / "ds", sampling=_cfg(), workers=1, cache_dir=cache)
    (root,) = list(cache.iterdir())
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    # geometry only: OBJ + MTL, no licence files or textures; the faceless OBJ was extracted then refused
    assert files == [
        "lib/deckChair/deckChair.mtl",
        "lib/deckChair/deckChair.obj",
        "lib/lamp/lamp.obj",
        "lib/lamp/model.mtl",
        "lib/light/light.obj",
        "lib/table/model.mtl",
        "lib/table/table.obj",
    ]
    mtl = (root / "lib/deckChair/deckChair.mtl").read_text()
    assert "map_" not in mtl and "/etc/passwd" not in mtl and "Kd " in mtl
    assert "/etc/passwd" not in (root / "lib/table/table.obj").read_text()


def test_same_library_twice_and_folders(library, tmp_path):
    with pytest.raises(ValueError, match=r"libraries given more than once: \['Tests#Lib'\]"):
        build_sweethome3d([library, library], tmp_path / "x", sampling=_cfg())
    assert find_archives([library.parent]) == [library]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no .sh3f furniture library in this folder"):
        find_archives([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="missing.sh3f: no such .sh3f file or folder"):
        find_archives([tmp_path / "missing.sh3f"])


def test_cli(library, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["data", "build", "sweethome3d", str(library.parent), "--out", str(out), "--classes", "chair,table"]
    res = runner.invoke(app, [*args, "--points", "128", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "built 3 shapes" in res.output
    assert sorted(ShapeDataset(out).classes()) == ["chair", "chair", "table"]
    res = runner.invoke(
        app, ["data", "build", "sweethome3d", str(library), "--out", str(tmp_path / "o"), "--classes", "throne"]
    )
    assert res.exit_code == 2 and "unknown Sweet Home 3D classes ['throne']" in " ".join(res.output.split())
    res = runner.invoke(
        app, ["data", "build", "sweethome3d", str(tmp_path / "none.sh3f"), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "none.sh3f: no such .sh3f file or folder" in " ".join(res.output.split())


@pytest.mark.parametrize(
    "name,category,tags,expected",
    [
        ("Chair", "Living room", "", "chair"),
        ("Chair with cushion", "Living room", "", "chair"),
        ("Baby high chair", "Kitchen", "", "chair"),
        ("Deck chair", "Exterior", "", "chair"),
        ("Teck chair", "Exterior", "Seat, Armchair", "armchair_sofa"),
        ("Wheelchair", "Miscellaneous", "", "other"),
        ("Bar stool", "Living room", "Chair, Seat", "stool"),
        ("Armchair ottoman", "Living room", "", "armchair_sofa"),
        ("Sofa 3 seats", "Living room", "", "armchair_sofa"),
        ("Convertible sofa BZ", "Bedroom", "Bed", "armchair_sofa"),
        ("Futon couch", "Living room", "", "armchair_sofa"),
        ("Piano bench", "Living room", "", "bench"),
        ("Little bank", "Exterior", "", "bench"),
        ("Abdominal bench", "Miscellaneous", "", "other"),
        ("Table on trestles", "Living room", "", "table"),
        ("Desk", "Office", "", "table"),
        ("Pool table", "Miscellaneous", "", "other"),
        ("Table fan", "Miscellaneous", "", "other"),
        ("Table tennis bat", "Miscellaneous", "", "other"),
        ("Bedside table", "Bedroom", "", "cabinet_shelf"),
        ("Captain's bed", "Bedroom", "", "bed"),
        ("Crib", "Bedroom", "", "bed"),
        ("Desk lamp", "Lights", "", "lamp"),
        ("Fluorescent strip", "Lights", "", "lamp"),
        ("Flashlight", "Lights", "", "other"),
        ("Candle", "Lights", "", "other"),
        ("Sink cabinet", "Kitchen", "", "cabinet_shelf"),
        ("Dresser with drawers", "Living room", "", "cabinet_shelf"),
        ("TV stand", "Living room", "", "cabinet_shelf"),
        ("Blue pine under snow", "Exterior", "Tree", "plant"),
        ("Sycamore", "Exterior", "Tree, Garden", "plant"),
        ("Spray bottle", "Exterior", "Garden, Plant", "other"),
        ("Toilets unit", "Bathroom", "", "sanitary"),
        ("Toilet brush", "Bathroom", "", "other"),
        ("Shower head and faucet", "Bathroom", "", "sanitary"),
        ("Shower door", "Bathroom", "", "other"),
        ("Clothes washing machine", "Kitchen", "", "appliance"),
        ("Coffee machine", "Kitchen", "", "other"),
        ("Induction cooker 2 zones", "Kitchen", "", "appliance"),
        ("Air conditioning - External unit", "Exterior", "", "appliance"),
        ("TV remote control", "Living room", "", "other"),
        ("Seat Leon", "Vehicles", "Car", "other"),
        ("Sitting male", "Characters", "", "other"),
    ],
)
def test_classify(name, category, tags, expected):
    assert classify(name, category, [t.strip() for t in tags.split(",") if t.strip()]) == expected
    assert expected in CLASSES


@pytest.mark.parametrize(
    "text,expected",
    [
        ('Thank you for downloading "x" by y\nReleased under\nCreative Commons Zero (Public Domain)\n', "CC0-1.0"),
        (CC_BY_FILE, "CC-BY-3.0"),
        (
            "<html><style>a {color: #f80}</style><h1>Blend #1</h1><p>Released under <b>Creative Commons "
            "Attribution 3.0</b></p><p>The blend author is violating a Creative Commons License</p></html>",
            "CC-BY-3.0",
        ),
        ("Released under the following license: Creative Commons Attribution-ShareAlike 4.0", "CC-BY-SA-4.0"),
        ("These files are under the Creative Commons Attribution 3.0 United States license", "CC-BY-3.0-US"),
        ("The sh3f file and its content are under the Creative Commons Attribution 3.0 Unported license", "CC-BY-3.0"),
        ("Public domain", "CC0-1.0"),
        ("All rights reserved.", None),
        ("Some files CC0, others Creative Commons Attribution 3.0.", None),  # ambiguous without a statement
    ],
)
def test_license_from_text(text, expected):
    assert license_from_text(text) == expected
