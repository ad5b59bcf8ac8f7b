"""The label policy of ingest: labels mean what their writer meant (pipeline/ingest.py, tidy_labels),
proven on generated tables in each file format."""
import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.config import DatasetConfig
from pipeline.core.errors import PipelineError
from pipeline.ingest import MISSING_LABELS, ingest

MISSING_SPELLINGS = ["NA", "na", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "none"]
assert {m.lower() for m in MISSING_SPELLINGS} <= set(MISSING_LABELS)


def source(path, **extra):
    return DatasetConfig.from_block({"name": "mine", "source": "files", "path": str(path),
                                     "validation_fraction": 0.0, **extra}).resolve()


def write(folder, fmt: str, texts: list[str], labels: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with open(folder / "train.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(zip(texts, labels))
    elif fmt == "jsonl":
        (folder / "train.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n"
                                                   for t, y in zip(texts, labels)), encoding="utf-8")
    else:
        pq.write_table(pa.table({"text": texts, "label": labels}), folder / "train.parquet")


names = st.text(alphabet="abcdefgh", min_size=1, max_size=5).filter(lambda n: n not in MISSING_LABELS)
space = st.sampled_from(["", " ", "  ", "\t"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(classes=st.lists(names, min_size=2, max_size=4, unique=True),
       rows=st.lists(st.tuples(st.integers(0, 3), space, space, st.booleans(), st.sampled_from(MISSING_SPELLINGS)),
                     min_size=2, max_size=40),
       fmt=st.sampled_from(["csv", "jsonl", "parquet"]))
def test_labels_are_stripped_and_missing_ones_dropped_in_every_format(tmp_path_factory, classes, rows, fmt):
    rows = [(k % len(classes), *rest) for k, *rest in rows] + [(k, "", "", False, "") for k in range(len(classes))]
    labels = [f"{left}{missing if is_missing else classes[k]}{right}" for k, left, right, is_missing, missing in rows]
    texts = [f"text {i}" for i in range(len(rows))]
    folder = tmp_path_factory.mktemp(fmt)
    write(folder / "data", fmt, texts, labels)
    stats = ingest(source(folder / "data"), folder / "raw")
    assert stats["labels"] == sorted(classes)
    kept = [(t, sorted(classes).index(classes[k])) for t, (k, _, _, m, _) in zip(texts, rows) if not m]
    back = pq.read_table(folder / "raw" / "train.parquet")
    assert list(zip(back.column("text").to_pylist(), back.column("label").to_pylist())) == kept
    assert stats["dropped"]["train"]["null_label"] == sum(m for *_, m, _ in rows)
    assert stats["labels_stripped"]["train"] == sum(y != y.strip() for y in labels)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_labels_that_differ_only_in_case_stop_ingest_until_dataset_labels_names_them(tmp_path, fmt):
    write(tmp_path / "d", fmt, ["a", "b", "c", "d"], ["pos", "POS", "neg", "pos"])
    with pytest.raises(PipelineError, match="the train labels 'POS' / 'pos' differ only in case.*dataset.labels"):
        ingest(source(tmp_path / "d"), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
    stats = ingest(source(tmp_path / "d", labels=["neg", "pos", "POS"]), tmp_path / "raw")
    assert stats["label_counts"]["train"] == {"neg": 1, "pos": 2, "POS": 1}


def test_a_missing_looking_label_is_a_class_when_dataset_labels_names_it(tmp_path):
    write(tmp_path / "d", "csv", ["a", "b", "c", "d"], ["NA", "EU", " NA", "AS"])  # continents
    stats = ingest(source(tmp_path / "d", labels=["AS", "EU", "NA"]), tmp_path / "raw")
    assert stats["label_counts"]["train"] == {"AS": 1, "EU": 1, "NA": 2} and stats["dropped"]["train"]["null_label"] == 0
    stats = ingest(source(tmp_path / "d"), tmp_path / "raw2")  # not named: "no label", counted and dropped
    assert stats["labels"] == ["AS", "EU"] and stats["dropped"]["train"]["null_label"] == 2


def test_a_tiny_class_beside_a_large_one_is_named_in_a_warning(tmp_path, capsys):
    write(tmp_path / "d", "csv", [f"t{i}" for i in range(402)], ["neg"] * 200 + ["pos"] * 200 + ["poz", "poz"])
    ingest(source(tmp_path / "d"), tmp_path / "raw")
    err = capsys.readouterr().err
    assert "warning: class(es) 'poz' (2 rows) next to 200 rows of the largest" in err and "dataset.labels" in err
    ingest(source(tmp_path / "d", labels=["neg", "pos", "poz"]), tmp_path / "raw2")
    assert "warning" not in capsys.readouterr().err
