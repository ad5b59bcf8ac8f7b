"""Files are read exactly and typed by rule, never by guessing (pipeline/sources.py, delimited_rows for
CSV and TSV): generated tables in every format come back byte-exact."""
import csv
import io
import json

import pyarrow as pa

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.core.config import DatasetConfig, IngestConfig
from pipeline.core.errors import PipelineError
from pipeline.ingest import ingest

TSV_UNSAFE = "\t\n\r"  # TSV has no quoting: a text cannot hold these
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
digit_codes = st.from_regex(r"0[0-9]{0,5}|[0-9]{1,3}e[0-9]|[0-9]+\.0", fullmatch=True)


def write(folder, fmt, header, rows):
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        buf = io.StringIO(newline="")
        csv.writer(buf).writerows([header, *rows])
        (folder / "train.csv").write_text(buf.getvalue(), encoding="utf-8", newline="")
    elif fmt == "tsv":
        (folder / "train.tsv").write_text("".join("\t".join(r) + "\n" for r in [header, *rows]), encoding="utf-8")
    elif fmt == "jsonl":
        (folder / "train.jsonl").write_text("".join(json.dumps(dict(zip(header, r))) + "\n" for r in rows),
                                            encoding="utf-8")
    else:
        pq.write_table(pa.table({h: [r[i] for r in rows] for i, h in enumerate(header)}), folder / "train.parquet")


def read_raw(out):
    table = pq.read_table(out / "train.parquet")
    return table.column("text").to_pylist(), table.column("id").to_pylist(), table.column("label").to_pylist()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.one_of(texts, digit_codes), st.one_of(digit_codes, texts.filter(bool)),
                               st.booleans()), min_size=1, max_size=25),
       fmt=st.sampled_from(["csv", "tsv", "jsonl", "parquet"]))
@example(rows=[("0001", "007", True), ("1e3", "0042", False), ("words at last", "1e3", True)], fmt="csv")
def test_texts_and_ids_come_back_exactly_whatever_they_look_like(tmp_path_factory, rows, fmt):
    if fmt == "tsv":
        rows = [(t.translate({ord(c): " " for c in TSV_UNSAFE}), i.translate({ord(c): "_" for c in TSV_UNSAFE}), y)
                for t, i, y in rows]
    rows = [*rows, ("one more", "x1", not rows[0][2])]  # both classes
    folder = tmp_path_factory.mktemp(fmt)
    write(folder / "d", fmt, ["id", "text", "label"], [(i, t, "pos" if y else "neg") for t, i, y in rows])
    block = {"name": "x", "source": "files", "path": str(folder / "d"), "id_column": "id", "validation_fraction": 0.0}
    ingest(DatasetConfig.from_block(block).resolve(), folder / "raw", IngestConfig(empty_text="keep"))
    got_texts, got_ids, got_labels = read_raw(folder / "raw")
    assert got_texts == [t for t, _, _ in rows]  # an empty CSV/TSV field is the one missing value: kept as ""
    assert got_ids == [i for _, i, _ in rows]
    assert got_labels == [int(y) for _, _, y in rows]


def test_a_column_that_looks_numeric_for_10000_rows_then_holds_words_is_still_read(tmp_path):
    rows = [(f"{i:05d}", "1" if i % 2 else "0") for i in range(12_000)] + [("now words", "1")]
    write(tmp_path / "d", "csv", ["text", "label"], rows)
    block = {"name": "x", "source": "files", "path": str(tmp_path / "d"), "validation_fraction": 0.0,
             "labels": ["neg", "pos"]}
    stats = ingest(DatasetConfig.from_block(block).resolve(), tmp_path / "raw")
    table = pq.read_table(tmp_path / "raw" / "train.parquet")
    assert table.column("text").to_pylist() == [t for t, _ in rows]
    assert stats["label_counts"]["train"] == {"neg": 6000, "pos": 6001}  # canonical integers: ids into labels


@pytest.mark.parametrize("labels,names", [(["1", "10", "2"], ["1", "2", "10"]),  # canonical: numeric order
                                          (["01", "1", "2"], ["01", "1", "2"]),  # a leading zero: names, as written
                                          ([" 1", "2 "], ["1", "2"]),  # surrounding spaces aside
                                          (["99999999999999999999", "1"], ["1", "99999999999999999999"])])
def test_labels_are_ids_only_when_every_one_is_a_canonical_integer(tmp_path, labels, names):
    write(tmp_path / "d", "csv", ["text", "label"], [(f"t{i}", y) for i, y in enumerate(labels)])
    block = {"name": "x", "source": "files", "path": str(tmp_path / "d"), "validation_fraction": 0.0}
    assert ingest(DatasetConfig.from_block(block).resolve(), tmp_path / "raw")["labels"] == names


def test_a_header_naming_a_column_twice_is_one_line(tmp_path):
    write(tmp_path / "d", "csv", ["text", "label", "text"], [("a", "pos", "b"), ("c", "neg", "d")])
    block = {"name": "x", "source": "files", "path": str(tmp_path / "d"), "validation_fraction": 0.0}
    with pytest.raises(PipelineError, match=r"names the column\(s\) 'text' more than once"):
        ingest(DatasetConfig.from_block(block).resolve(), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
