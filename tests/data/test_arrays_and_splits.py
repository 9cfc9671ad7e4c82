"""arrays:PATH sources and seeded splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import siamese
from siamese.data.labeled import LabeledData
from siamese.data.splits import split_data
from siamese.errors import ConfigError, DataError


def test_npz_with_string_labels_and_metadata(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(6, 4))
    np.savez(
        tmp_path / "d.npz",
        features=x,
        labels=np.array(list("bacbca")),
        session=np.arange(6) % 2,
        speaker=np.array(["p", "q", "p", "q", "p", "q"]),
    )
    data = siamese.load_dataset(f"arrays:{tmp_path / 'd.npz'}")
    assert data.x.dtype == torch.float32 and torch.allclose(
        data.x.double(), torch.from_numpy(x), atol=1e-6
    )
    assert data.classes == ["a", "b", "c"] and data.y.tolist() == [1, 0, 2, 1, 2, 0]
    assert data.meta["session"].tolist() == [0, 1, 0, 1, 0, 1]
    assert data.meta_names["speaker"] == ["p", "q"]


@pytest.mark.filterwarnings("ignore:.*single example:UserWarning")  # tiny examples
def test_npy_pair_sequences_and_sparse_integer_labels(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(5, 7, 3)).astype(np.float32)
    np.save(tmp_path / "feats.npy", x)
    np.save(tmp_path / "feats_labels.npy", np.array([10, 3, 10, 7, 3]))
    data = siamese.load_dataset(f"arrays:{tmp_path / 'feats.npy'}")
    assert tuple(data.x.shape) == (5, 7, 3)
    assert data.classes == ["3", "7", "10"] and data.y.tolist() == [2, 0, 2, 1, 0]
    np.save(tmp_path / "other.npy", np.array([0, 0, 1, 1, 1]))
    relabeled = siamese.load_dataset(
        f"arrays:{tmp_path / 'feats.npy'}", labels=tmp_path / "other.npy"
    )
    assert relabeled.y.tolist() == [0, 0, 1, 1, 1]


@pytest.mark.filterwarnings("ignore:.*single example:UserWarning")  # tiny examples
def test_directory_of_x_and_y(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 2), dtype=np.uint8))
    np.save(tmp_path / "y.npy", np.array([[1], [2], [1]]))
    data = siamese.load_dataset(f"arrays:{tmp_path}")
    assert data.x.dtype == torch.uint8 and data.y.tolist() == [0, 1, 0]


@pytest.mark.filterwarnings("ignore:.*single example:UserWarning")  # tiny examples
def test_csv_with_header_label_column_anywhere(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(
        "species,len,width\nsetosa,5.1,3.5\nvirginica,6.3,3.3\nsetosa,4.9,3.0\n"
    )
    data = siamese.load_dataset(f"arrays:{tmp_path / 'd.csv'}", label_column="species")
    assert data.classes == ["setosa", "virginica"] and data.y.tolist() == [0, 1, 0]
    assert torch.allclose(data.x, torch.tensor([[5.1, 3.5], [6.3, 3.3], [4.9, 3.0]]))
    (tmp_path / "h.csv").write_text("a,b,label\n1,2,x\n3,4,y\n")
    assert siamese.load_dataset(f"arrays:{tmp_path / 'h.csv'}").classes == ["x", "y"]
    (tmp_path / "n.csv").write_text("1,2,0\n3,4,1\n5,6,1\n")  # no header, last column
    assert siamese.load_dataset(f"arrays:{tmp_path / 'n.csv'}").y.tolist() == [0, 1, 1]
    (tmp_path / "s.csv").write_text("cat,1,2\ndog,3,4\n")  # no header, string labels first
    data = siamese.load_dataset(f"arrays:{tmp_path / 's.csv'}", label_column=0)
    assert data.classes == ["cat", "dog"] and data.x.tolist() == [[1, 2], [3, 4]]


def test_csv_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,x\n3,oops,y\n")
    with pytest.raises(DataError, match=r"d\.csv, line 3: 'oops' is not a number"):
        siamese.load_dataset(f"arrays:{tmp_path / 'd.csv'}")
    (tmp_path / "r.csv").write_text("1,2,0\n3,4\n")
    with pytest.raises(DataError, match=r"r\.csv, line 2: 2 columns, expected 3"):
        siamese.load_dataset(f"arrays:{tmp_path / 'r.csv'}")
    with pytest.raises(ConfigError, match="no column named 'kind'"):
        siamese.load_dataset(f"arrays:{tmp_path / 'd.csv'}", label_column="kind")


def test_array_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    np.save(tmp_path / "y.npy", np.zeros(3, dtype=int))
    with pytest.raises(DataError, match=r"x\.npy has 4 examples but .*y\.npy has 3 labels"):
        siamese.load_dataset(f"arrays:{tmp_path}")
    np.save(tmp_path / "y.npy", np.zeros(4, dtype=int))
    bad = np.zeros((4, 2))
    bad[2, 1] = np.nan
    np.save(tmp_path / "x.npy", bad)
    with pytest.raises(DataError, match="example 2 has NaN"):
        siamese.load_dataset(f"arrays:{tmp_path}")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy: holds Python objects"):
        siamese.load_dataset(f"arrays:{tmp_path / 'obj.npy'}", labels=tmp_path / "y.npy")
    np.savez(tmp_path / "k.npz", inputs=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(
        DataError, match=r"k\.npz: holds the arrays \['inputs', 'y'\]; name the features"
    ):
        siamese.load_dataset(f"arrays:{tmp_path / 'k.npz'}")
    (tmp_path / "lonely.npy").write_bytes((tmp_path / "x.npy").read_bytes())
    (tmp_path / "y.npy").unlink()
    with pytest.raises(DataError, match=r"lonely\.npy: no labels found beside it"):
        siamese.load_dataset(f"arrays:{tmp_path / 'lonely.npy'}")
    with pytest.raises(DataError, match="not found"):
        siamese.load_dataset(f"arrays:{tmp_path / 'nothing.npz'}")


def _data(counts: list[int]) -> LabeledData:
    y = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return LabeledData(
        x=torch.arange(len(y))[:, None], y=y, classes=[f"c{i}" for i in range(len(counts))]
    )


def test_class_split_is_disjoint_complete_and_seeded() -> None:
    data = _data([3] * 20)
    split = split_data(data, {"train": 0.6, "val": 0.2, "test": 0.2}, by="class", seed=3)
    ids = {name: set(part.class_ids.tolist()) for name, part in split.parts.items()}
    assert [len(v) for v in ids.values()] == [12, 4, 4]
    assert set().union(*ids.values()) == set(range(20))
    assert not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    again = split_data(data, {"train": 0.6, "val": 0.2, "test": 0.2}, by="class", seed=3)
    assert all(torch.equal(again.indices[k], split.indices[k]) for k in split.indices)
    other = split_data(data, {"train": 0.6, "val": 0.2, "test": 0.2}, by="class", seed=4)
    assert not torch.equal(other.indices["test"], split.indices["test"])
    record = json.loads(json.dumps(split.record()))
    assert record["method"] == "class" and record["seed"] == 3
    assert record["parts"]["test"]["class_names"] == [f"c{i}" for i in sorted(ids["test"])]


def test_tiny_fractions_still_get_a_class() -> None:
    split = split_data(_data([2] * 5), {"train": 0.98, "test": 0.02}, by="class")
    assert [p.class_ids.numel() for p in split.parts.values()] == [4, 1]


def test_sample_split_is_stratified_and_a_partition() -> None:
    data = _data([100, 50, 10, 1])
    split = split_data(data, {"train": 0.8, "test": 0.2}, by="sample", seed=0)
    train, test = split.parts["train"], split.parts["test"]
    assert train.class_counts().tolist() == [80, 40, 8, 1]
    assert test.class_counts().tolist() == [20, 10, 2, 0]
    both = torch.cat([split.indices["train"], split.indices["test"]]).sort().values
    assert torch.equal(both, torch.arange(len(data)))
    assert split.record()["parts"]["test"]["indices"] == split.indices["test"].tolist()


@pytest.mark.parametrize(
    ("parts", "by", "message"),
    [
        ({"train": 0.5, "test": 0.4}, "class", "sum to 1"),
        ({"all": 1.0}, "class", "two or more parts"),
        ({"a": 0.5, "b": 0.5}, "random", "choose 'class'"),
        ({"a": 0.4, "b": 0.3, "c": 0.3}, "class", "cannot split 2 classes into 3"),
    ],
)
def test_split_errors(parts: dict[str, float], by: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_data(_data([2, 2]), parts, by=by)  # type: ignore[arg-type]


def test_a_class_with_one_example_is_a_warning_not_an_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 2)), y=np.array(["a", "a", "b", "b", "solo"]))
    with pytest.warns(
        UserWarning,
        match=r"d\.npz: 1 class\(es\) have a single example, so they can't form positive pairs: solo",
    ):
        data = siamese.load_dataset(f"arrays:{tmp_path / 'd.npz'}")
    assert data.classes == ["a", "b", "solo"]


def test_csv_header_detection_bom_and_numbered_pandas_headers(tmp_path: Path) -> None:
    # Excel writes a byte-order mark; the first header name must not carry it.
    (tmp_path / "bom.csv").write_bytes("\ufefflabel,a,b\nx,1,2\ny,3,4\nx,5,6\ny,7,8\n".encode())
    assert siamese.load_dataset(f"arrays:{tmp_path / 'bom.csv'}").classes == ["x", "y"]
    # pandas' to_csv with an unnamed index writes numbered column names over string labels.
    (tmp_path / "pd.csv").write_text("0,1,2\n1.5,2.5,cat\n3.5,4.5,dog\n0,0,cat\n0,0,dog\n")
    data = siamese.load_dataset(f"arrays:{tmp_path / 'pd.csv'}")
    assert data.classes == ["cat", "dog"] and data.x[:2].tolist() == [[1.5, 2.5], [3.5, 4.5]]
    # A header naming the label column by one of the usual names, labels numeric.
    (tmp_path / "t.csv").write_text("f1,f2,target\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    assert siamese.load_dataset(f"arrays:{tmp_path / 't.csv'}").y.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,label\n", r"h\.csv: only a header, no data rows"),
        ("", r"h\.csv: the file is empty"),
        ("label\nx\ny\n", r"h\.csv: line 1 has a single column; expected features and a label"),
    ],
)
def test_csv_without_examples_or_features(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "h.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        siamese.load_dataset(f"arrays:{tmp_path / 'h.csv'}")


def test_csv_label_column_out_of_range_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("1,2,0\n3,4,1\n")
    with pytest.raises(ConfigError, match=r"d\.csv: label column 5 is out of range for 3"):
        siamese.load_dataset(f"arrays:{tmp_path / 'd.csv'}", label_column=5)


def test_empty_or_flat_arrays_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz", x=np.zeros((0, 3)), y=np.zeros(0, dtype=int))
    with pytest.raises(DataError, match=r"e\.npz: features of shape \(0, 3\);.* N >= 1"):
        siamese.load_dataset(f"arrays:{tmp_path / 'e.npz'}")
    np.savez(tmp_path / "f.npz", x=np.zeros(4), y=np.zeros(4, dtype=int))
    with pytest.raises(DataError, match=r"f\.npz: features of shape \(4,\); expected one row"):
        siamese.load_dataset(f"arrays:{tmp_path / 'f.npz'}")


@pytest.mark.parametrize("seed", range(40))
def test_apportion_gives_every_part_a_class_and_sums_to_the_total(seed: int) -> None:
    from siamese.data.splits import _apportion

    rng = np.random.default_rng(seed)
    n_parts = int(rng.integers(2, 6))
    fractions = rng.dirichlet(np.full(n_parts, 0.3)).tolist()
    total = int(rng.integers(n_parts, 60))
    sizes = _apportion(fractions, total)
    assert sum(sizes) == total and min(sizes) >= 1
    # Within one item of its fair share, plus what the parts raised to one had to take.
    raised = sum(1 for f in fractions if f * total < 1)
    for size, fraction in zip(sizes, fractions, strict=True):
        assert abs(size - fraction * total) < 1 + raised
