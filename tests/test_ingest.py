import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import DatasetConfig, IngestConfig
from pipeline.core.errors import PipelineError
from pipeline.core.fileio import write_parts
from pipeline.ingest import ingest

from .helpers import run_cli, shared_dataset


def cfg(**kw):
    return DatasetConfig.from_block(kw).resolve()


def write_csv(folder, name, text, encoding="utf-8"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(text.encode(encoding) if isinstance(text, str) else text)


def test_demo_preset_ingests_with_stratified_validation(tmp_path):
    stats = ingest(cfg(name="demo"), tmp_path / "raw")
    assert stats["labels"] == ["neg", "pos"]
    assert stats["rows"] == {"train": 2160, "validation": 240, "test": 600}
    # 10% of each class of demo_data/train.jsonl (1,226 neg, 1,174 pos), rounded
    assert stats["label_counts"]["validation"] == {"neg": 123, "pos": 117}
    assert stats["label_counts"]["train"] == {"neg": 1226 - 123, "pos": 1174 - 117}
    t = pq.read_table(tmp_path / "raw" / "train.parquet")
    assert t.column_names == ["text", "label"] and t.schema.field("label").type == pa.int64()
    assert json.loads(t.schema.metadata[b"textpipe.labels"]) == ["neg", "pos"]


def test_csv_string_labels_empty_text_counted_and_dropped(tmp_path):
    data = tmp_path / "data"
    write_csv(data, "train.csv", 'review,sentiment\n"good film",pos\n"",neg\n"bad film",neg\n"   ",pos\n"fine",pos\n')
    write_csv(data, "test.csv", 'review,sentiment\n"ok",pos\n"meh",neg\n')
    c = cfg(name="mine", source="files", path=str(data), text_column="review", label_column="sentiment",
            labels=["neg", "pos"], validation_fraction=0.0)
    stats = ingest(c, tmp_path / "raw")
    assert stats["rows"] == {"train": 3, "test": 2}
    assert stats["dropped"]["train"] == {"null_text": 1, "empty_text": 1, "null_label": 0}
    t = pq.read_table(tmp_path / "raw" / "train.parquet")
    assert t.column("text").to_pylist() == ["good film", "bad film", "fine"]
    assert t.column("label").to_pylist() == [1, 0, 1]
    kept = ingest(c, tmp_path / "raw2", IngestConfig(empty_text="keep"))
    assert kept["rows"]["train"] == 5 and kept["dropped"]["train"]["kept_empty_text"] == 2


def test_a_tiny_file_still_gets_a_validation_row_and_one_row_classes_are_refused(tmp_path):
    write_csv(tmp_path / "tiny", "train.csv", "text,label\ngood film,1\nbad film,0\ngreat,1\nawful,0\n")
    stats = ingest(cfg(name="tiny", source="files", path=str(tmp_path / "tiny")), tmp_path / "raw")
    assert sum(stats["rows"].values()) == 4 and stats["rows"]["validation"] == 1  # 10% of 4 rows, at least one
    assert sorted(stats["label_counts"]["train"].values()) == [1, 2]
    write_csv(tmp_path / "ones", "train.csv", "text,label\na,x\nb,y\nc,z\n")
    with pytest.raises(PipelineError) as err:
        ingest(cfg(name="ones", source="files", path=str(tmp_path / "ones")), tmp_path / "raw2")
    assert str(err.value) == ("cannot carve a validation split from train: no class has a row to spare, as training "
                              "needs one of each (x: 1, y: 1, z: 1); add rows, or give a validation file")


def test_the_same_files_under_another_path_give_the_same_bytes(tmp_path, monkeypatch):
    """A folder is recorded by its name, not its location: `data/x`, `$PWD/data/x` (how the README
    queues runs) and a moved copy give byte-identical raw/, so DVC reruns nothing after ingest."""
    text = "review,stars\n" + "".join(f'"good film {i}",pos\n"bad film {i}",neg\n' for i in range(10))
    write_csv(tmp_path / "data" / "mine", "train.csv", text)
    write_csv(tmp_path / "elsewhere" / "mine", "train.csv", text)
    monkeypatch.chdir(tmp_path)
    paths = ["data/mine", str(tmp_path / "data" / "mine"), "./data/../data/mine/", str(tmp_path / "elsewhere" / "mine")]
    outs = []
    for i, path in enumerate(paths):
        ingest(cfg(name="mine", source="files", path=path, text_column="review", label_column="stars"), tmp_path / f"raw{i}")
        outs.append({p.name: p.read_bytes() for p in sorted((tmp_path / f"raw{i}").iterdir())})
    assert sorted(outs[0]) == ["checksums.json", "params.json", "stats.json", "train.parquet",
                               "validation.parquet"]
    assert all(out == outs[0] for out in outs[1:])
    assert json.loads(outs[0]["params.json"])["dataset"]["path"] == "mine"


def test_tsv_and_jsonl_are_read(tmp_path):
    write_csv(tmp_path / "t", "train.tsv", "text\tlabel\nhello there\t1\nbye now\t0\n")
    write_csv(tmp_path / "j", "train.jsonl", '{"text": "hello", "label": 1}\n{"text": "bye", "label": 0}\n')
    for sub in ("t", "j"):
        stats = ingest(cfg(name=sub, source="files", path=str(tmp_path / sub), validation_fraction=0.0), tmp_path / f"o{sub}")
        assert stats["rows"] == {"train": 2} and stats["labels"] == ["0", "1"]


@pytest.mark.parametrize("content,kw,message", [
    ("text,label\nhi,1\n", {"text_column": "review"}, "no column 'review'; columns are: text, label"),
    # a spreadsheet's ';'-separated export: one column named 'text;label'
    ("text;label\nhi;1\n", {}, "split 'train' has one column, 'text;label': its file looks ';'-separated, but .csv "
     "is read as comma-separated and .tsv as tab-separated; save it comma-separated as .csv or tab-separated as .tsv"),
    ("body;queue\nhi;1\n", {"text_column": "body"}, "its file looks ';'-separated"),
    ("text|label\nhi|1\n", {}, "its file looks '|'-separated"),
    ("text\nhi\n", {}, "no column 'label'; columns are: text (set dataset.label_column)"),  # one column, no separator
    ("text,label\nhi,spam\n", {"labels": ["neg", "pos"]}, "unknown label(s) ['spam']; known labels: neg, pos"),
    ("text,label\nhi,7\n", {"labels": ["neg", "pos"]}, "label id(s) [7] outside 0..1"),
    ("text,label\n,1\n", {}, "split 'train' is empty"),
])
def test_bad_input_gets_one_line_error(tmp_path, content, kw, message):
    write_csv(tmp_path / "d", "train.csv", content)
    with pytest.raises(PipelineError) as err:
        ingest(cfg(name="x", source="files", path=str(tmp_path / "d"), validation_fraction=0.0, **kw), tmp_path / "o")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_invalid_utf8_names_file_and_line(tmp_path):
    write_csv(tmp_path / "d", "train.csv", b"text,label\nok,1\nbad \xff byte,0\n")
    with pytest.raises(PipelineError, match=r"train.csv is not valid UTF-8 \(line 3, byte offset 20\)"):
        ingest(cfg(name="x", source="files", path=str(tmp_path / "d")), tmp_path / "o")


def test_unreadable_type_and_missing_train(tmp_path):
    write_csv(tmp_path / "d", "train.xlsx", b"x")
    with pytest.raises(PipelineError, match="no train"):
        ingest(cfg(name="x", source="files", path=str(tmp_path / "d")), tmp_path / "o")
    with pytest.raises(PipelineError, match="not a preset"):
        cfg(name="nosuch")


@pytest.mark.parametrize("name,message", [
    ("a/b", "not a safe folder name"), ("..", "not a safe folder name"), (".", "not a safe folder name"),
    ("/abs", "not a safe folder name"), ("my data", "not a safe folder name"), (".hidden", "not a safe folder name"),
    ("x;echo hi", "not a safe folder name"), ("$(id)", "not a safe folder name"), ("a`id`", "not a safe folder name"),
    ("", "not a safe folder name"), ("x" * 101, "not a safe folder name"),
    ("metrics", "taken by artifacts/metrics/"), ("plots", "taken by artifacts/plots/")])
def test_dataset_names_that_would_clash_with_artifact_paths(name, message):
    with pytest.raises(PipelineError, match=message):
        cfg(name=name, source="files", path="x")


def test_cli_error_is_one_line_without_traceback(tmp_path, write_params):
    params = write_params(dataset={"name": "x", "source": "files", "path": str(tmp_path / "missing")})
    proc = run_cli("ingest", "--params", params, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr == f"Error: dataset.path {tmp_path / 'missing'} is not a folder; it must hold train.* " \
                          "(and optionally validation.*, test.*)\n"
    assert not (tmp_path / "artifacts" / "x" / "raw").exists()


def test_shared_sst2_ingests_real_counts(tmp_path):
    path = shared_dataset("sst2")
    stats = ingest(cfg(name="sst2", source="files", path=str(path), text_column="text"), tmp_path / "raw")
    assert stats["rows"] == {"train": 67349, "validation": 872}
    assert stats["label_counts"]["validation"] == {"negative": 428, "positive": 444}


HOSTILE_TEXTS = ['"urgent" refund please', '"unclosed quote at the start', 'a ""doubled"" quote', "ends with a quote\"",
                 "NA", "null", "nan", "N/A", "None", "-", "emoji 🎉 and עברית and zero\u200bwidth", "plain text"]


def test_tsv_with_stray_quotes_is_read_exactly(tmp_path):
    rows = [(HOSTILE_TEXTS[i % len(HOSTILE_TEXTS)] + f" #{i}", ("billing", "tech")[i % 2]) for i in range(300)]
    write_csv(tmp_path / "d", "train.tsv", "text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows))
    stats = ingest(cfg(name="t", source="files", path=str(tmp_path / "d"), validation_fraction=0.0), tmp_path / "o")
    assert stats["rows"] == {"train": 300} and stats["dropped"]["train"] == {"null_text": 0, "empty_text": 0, "null_label": 0}
    t = pq.read_table(tmp_path / "o" / "train.parquet")
    assert t.column("text").to_pylist() == [r[0] for r in rows]
    assert t.column("label").to_pylist() == [["billing", "tech"].index(r[1]) for r in rows]


def test_csv_with_embedded_newlines_quotes_and_na_words_is_read_exactly(tmp_path):
    import csv
    import io

    texts = HOSTILE_TEXTS + ["two\nlines", "comma, inside", 'quote " inside', "\ttabbed\t", "trailing newline\n"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows((t, i % 2) for i, t in enumerate(texts))
    write_csv(tmp_path / "d", "train.csv", buf.getvalue())
    stats = ingest(cfg(name="c", source="files", path=str(tmp_path / "d"), validation_fraction=0.0), tmp_path / "o")
    assert stats["rows"] == {"train": len(texts)}
    assert pq.read_table(tmp_path / "o" / "train.parquet").column("text").to_pylist() == texts


def test_tsv_line_with_an_extra_tab_is_refused_naming_the_line(tmp_path):
    write_csv(tmp_path / "d", "train.tsv", "text\tlabel\nfine\t1\nhas\ta tab\t0\nfine too\t1\n")
    with pytest.raises(PipelineError) as err:
        ingest(cfg(name="t", source="files", path=str(tmp_path / "d"), validation_fraction=0.0), tmp_path / "o")
    assert "train.tsv" in str(err.value) and "line 3" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "o").exists()


def test_unparseable_csv_is_one_line_through_the_cli(tmp_path, write_params):
    write_csv(tmp_path / "e", "train.csv", 'text,label\n"unclosed,1\nnext,0\n')
    params = write_params(dataset={"name": "e", "source": "files", "path": str(tmp_path / "e")})
    proc = run_cli("ingest", "--params", params, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"Error: {tmp_path / 'e' / 'train.csv'} line 2: expected 2 fields, saw 1 (a stray quote, "
                           "delimiter or line break?); fix that line\n")


def test_source_fingerprint_follows_content_not_times(tmp_path, monkeypatch):
    import hashlib
    import os

    from pipeline import fingerprint

    data = tmp_path / "data"
    write_csv(data, "train.csv", "text,label\ngood,1\nbad,0\n")
    write_csv(data, "test.tsv", "text\tlabel\nfine\t1\n")
    write_csv(data, "notes.txt", "not a split\n")
    src, cache = cfg(source="files", path=str(data)), tmp_path / "artifacts" / ".cache" / "hashes.json"
    hashed = []
    real_sha = fingerprint.sha256_file
    monkeypatch.setattr(fingerprint, "sha256_file", lambda p: hashed.append(p.name) or real_sha(p))

    first = fingerprint.source_fingerprint(src, cache)
    train, test = b"text,label\ngood,1\nbad,0\n", b"text\tlabel\nfine\t1\n"
    assert first == {"train": {"file": "train.csv", "bytes": len(train), "sha256": hashlib.sha256(train).hexdigest()},
                     "test": {"file": "test.tsv", "bytes": len(test), "sha256": hashlib.sha256(test).hexdigest()}}
    assert sorted(hashed) == ["test.tsv", "train.csv"]
    # unchanged files are not read again; a touch changes no fingerprint and reads the file once
    assert fingerprint.source_fingerprint(src, cache) == first and len(hashed) == 2
    later = os.stat(data / "train.csv").st_mtime + 100
    os.utime(data / "train.csv", (later, later))
    assert fingerprint.source_fingerprint(src, cache) == first and hashed[2:] == ["train.csv"]
    # an edit in place changes the train entry only; a new validation file appears
    write_csv(data, "train.csv", "text,label\ngood,1\nbad,1\n")
    write_csv(data, "validation.jsonl", '{"text": "ok", "label": 1}\n')
    edited = fingerprint.source_fingerprint(src, cache)
    assert edited["test"] == first["test"] and edited["train"]["sha256"] != first["train"]["sha256"]
    assert list(edited) == ["train", "validation", "test"] and edited["validation"]["file"] == "validation.jsonl"
    # a damaged cache is rebuilt, never trusted; the demo and the hub have no files to fingerprint
    cache.write_text("{not json")
    assert fingerprint.source_fingerprint(src, cache) == edited
    # so is one damaged entry (a string, a list, a short hash): that file is hashed again
    import json

    for bad in ("oops", [1, 2], {"stat": "x", "sha256": "ab"}, {"stat": [1], "sha256": "z" * 64}):
        body = json.loads(cache.read_text())
        body["files"][str((data / "train.csv").resolve())] = bad
        cache.write_text(json.dumps(body))
        assert fingerprint.source_fingerprint(src, cache) == edited
    assert fingerprint.source_fingerprint(cfg(name="demo"), cache) == {}


def test_source_fingerprint_refuses_a_fifo_without_blocking(tmp_path):
    import os

    from pipeline.fingerprint import source_fingerprint

    data = tmp_path / "data"
    data.mkdir()
    os.mkfifo(data / "train.csv")
    with pytest.raises(PipelineError, match="train.csv is not a regular file"):
        source_fingerprint(cfg(source="files", path=str(data)), tmp_path / "cache.json")


def test_one_dataset_as_csv_or_parquet_of_any_layout_gives_the_same_raw_bytes(tmp_path):
    """Raw splits hold the rows only: the same 20,000 rows as a CSV (read by `datasets`, whose copy is
    read in its own batches), as a Parquet file of one row group, or as one of 777-row row groups
    with dictionary-encoded columns (a pandas `category`) and large strings, give byte-identical
    files, written in row groups of 8,192 rows."""
    rows = 20_000
    texts = [f"{HOSTILE_TEXTS[i % len(HOSTILE_TEXTS)]} #{i}" for i in range(rows)]
    labels = [("neg", "pos")[(i * 7) % 3 == 0] for i in range(rows)]
    table = pa.table({"text": texts, "label": labels})
    # each in a folder of the same name: params.json records the folder's name
    write_csv(tmp_path / "csv" / "reviews", "train.csv", table.to_pandas().to_csv(index=False, lineterminator="\n"))
    (tmp_path / "one" / "reviews").mkdir(parents=True)
    pq.write_table(table, tmp_path / "one" / "reviews" / "train.parquet")
    (tmp_path / "many" / "reviews").mkdir(parents=True)
    odd = pa.table({"label": table.column("label").dictionary_encode(),
                    "text": table.column("text").cast(pa.large_string()).dictionary_encode()})
    pq.write_table(odd, tmp_path / "many" / "reviews" / "train.parquet", row_group_size=777)
    outs = {}
    for layout in ("csv", "one", "many"):
        stats = ingest(cfg(name="x", source="files", path=str(tmp_path / layout / "reviews")), tmp_path / layout / "raw")
        assert stats["rows"] == {"train": 18_000, "validation": 2_000}, layout
        outs[layout] = {p.name: p.read_bytes() for p in sorted((tmp_path / layout / "raw").iterdir())}
    assert outs["one"] == outs["csv"] and outs["many"] == outs["csv"]
    raw = pq.ParquetFile(tmp_path / "csv" / "raw" / "train.parquet")
    assert [raw.metadata.row_group(i).num_rows for i in range(raw.num_row_groups)] == [8192, 8192, 1616]
    back = raw.read()
    validation = set(pq.read_table(tmp_path / "csv" / "raw" / "validation.parquet").column("text").to_pylist())
    kept = [i for i in range(rows) if texts[i] not in validation]
    assert back.column("text").to_pylist() == [texts[i] for i in kept]  # every text exactly, in file order
    assert back.column("label").to_pylist() == [int(labels[i] == "pos") for i in kept]
    assert json.loads(back.schema.metadata[b"textpipe.labels"]) == ["neg", "pos"]


def test_hub_splits_whole_or_sliced_give_exactly_their_rows(tmp_path, monkeypatch):
    """A whole hub split is read from its cache files a batch at a time; a sliced one (`train[:60%]`)
    does not hold all of its cache files' rows and is read from the table `datasets` gives."""
    import datasets

    from pipeline import sources

    data = tmp_path / "hub"
    data.mkdir()
    train = [f"train review {i}" for i in range(500)]
    test = [f"test review {i}" for i in range(100)]
    pq.write_table(pa.table({"sentence": train, "label": [i % 2 for i in range(500)]}), data / "train.parquet")
    pq.write_table(pa.table({"sentence": test, "label": [i % 2 for i in range(100)]}), data / "test.parquet")

    class Hub:  # load_dataset("someone/reviews", split=...) answered from the files above, offline
        @staticmethod
        def load_dataset(path, split):
            assert path == "someone/reviews"
            files = {"train": str(data / "train.parquet"), "test": str(data / "test.parquet")}
            return datasets.load_dataset("parquet", data_files=files, split=split, cache_dir=str(tmp_path / "cache"))

    monkeypatch.setattr(sources, "_quiet_datasets", lambda: Hub)
    stats = ingest(cfg(name="r", source="hub", path="someone/reviews", text_column="sentence", labels=["neg", "pos"],
                       splits={"train": "train[:60%]", "test": "test"}, validation_fraction=0.0), tmp_path / "raw")
    assert stats["rows"] == {"train": 300, "test": 100}
    assert pq.read_table(tmp_path / "raw" / "train.parquet").column("text").to_pylist() == train[:300]
    assert pq.read_table(tmp_path / "raw" / "test.parquet").column("text").to_pylist() == test


def test_duplicate_counts_spilled_to_scratch_equal_those_held_in_memory(tmp_path, monkeypatch):
    """Past DuplicateCounter.SPILL_ROWS the fingerprints go to the run's scratch folder in hash parts:
    the same stats and raw bytes as counting in memory, and no scratch left behind."""
    from pipeline import duplicates

    held = ingest(cfg(name="demo"), tmp_path / "held" / "raw")
    spills = []
    monkeypatch.setattr(duplicates.DuplicateCounter, "SPILL_ROWS", 256)
    monkeypatch.setattr(duplicates.DuplicateCounter, "PART_ROWS", 300)
    monkeypatch.setattr(duplicates, "write_parts", lambda path, *a: spills.append(path) or write_parts(path, *a))
    spilled = ingest(cfg(name="demo"), tmp_path / "spilled" / "raw")
    assert len(spills) > 1 and len({p.parent for p in spills}) == 1  # several spill files, in one scratch folder
    assert spilled == held
    assert held["duplicates"]["train"]["repeated_rows"] > 0 and held["overlap"]["test_in_train"] > 0
    for name in ("held", "spilled"):
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["raw"]
    files = {name: {p.name: p.read_bytes() for p in (tmp_path / name / "raw").iterdir()} for name in ("held", "spilled")}
    assert files["held"] == files["spilled"]
