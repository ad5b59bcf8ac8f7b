"""Hostile and odd input files, table-driven: each is either one `Error:` line or rows kept and
dropped with counts, and every kept text is read back exactly as it was written."""
import csv
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import DatasetConfig
from pipeline.core.errors import PipelineError
from pipeline.ingest import ingest

ODD_TEXTS = [
    "emoji 😀👍🏽 and flags 🇫🇷",
    "RTL: שלום עולם and مرحبا بالعالم",
    "zero\u200bwidth\u200djoiner\ufeffbom-in-text",
    "control \x01\x07 chars and a tab\there",
    '"urgent" refund, please',
    "a\nmulti-line\r\ntext",
    "NA",
    "null",
]


def csv_text(rows, header=("text", "label")):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def tsv_text(rows, header=("text", "label")):
    return "\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n"


def jsonl_text(rows):
    return "".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows)


def balanced(n, texts=None):
    """n rows alternating neg/pos with distinct texts."""
    return [(texts[i] if texts else f"review number {i}", "neg" if i % 2 else "pos") for i in range(n)]


# (id, {file: content}, dataset overrides, expected): expected is ("error", message part) or
# ("kept", {split: rows}, {split: dropped counts}, texts that must be read back, in order, per split)
CASES = [
    ("empty-file", {"train.csv": ""}, {}, ("error", "train.csv is empty")),
    ("header-only", {"train.csv": "text,label\n"}, {}, ("error", "train.csv has no data rows")),
    ("no-text-column", {"train.csv": csv_text(balanced(4), ("body", "label"))}, {}, ("error", "has no column 'text'")),
    ("no-label-column", {"train.csv": csv_text(balanced(4), ("text", "y"))}, {}, ("error", "has no column 'label'")),
    ("null-empty-blank-texts", {"train.jsonl": jsonl_text(balanced(6)) + '{"text": null, "label": "neg"}\n'
                                '{"text": "", "label": "pos"}\n{"text": "  \\t ", "label": "neg"}\n'
                                '{"text": "no label", "label": null}\n'},
     {}, ("kept", {"train": 6}, {"train": {"null_text": 1, "empty_text": 2, "null_label": 1}},
          {"train": [t for t, _ in balanced(6)]})),
    ("label-outside-known-set", {"train.csv": csv_text(balanced(4) + [("x", "spam")])}, {"labels": ["neg", "pos"]},
     ("error", "unknown label(s) ['spam']")),
    ("numeric-string-labels", {"train.csv": csv_text([(f"t{i}", ("10", "2", "1")[i % 3]) for i in range(9)])}, {},
     ("labels", ["1", "2", "10"])),
    ("mixed-label-types", {"train.csv": csv_text([("a", "0"), ("b", "1"), ("c", "neg"), ("d", "pos")])}, {},
     ("error", "mix numbers (0, 1) and names (neg, pos)")),
    # CSV labels are ids only when every one is a canonical integer; anything else is a name, as written
    ("float-labels", {"train.csv": csv_text([("a", "0.0"), ("b", "1.0"), ("c", "1.0")])}, {}, ("labels", ["0.0", "1.0"])),
    ("fractional-labels", {"train.csv": csv_text([("a", "0.5"), ("b", "1.0")])}, {}, ("labels", ["0.5", "1.0"])),
    ("float-labels-jsonl", {"train.jsonl": '{"text": "a", "label": 0.0}\n{"text": "b", "label": 1.0}\n'}, {},
     ("labels", ["0", "1"])),
    ("fractional-labels-jsonl", {"train.jsonl": '{"text": "a", "label": 0.5}\n{"text": "b", "label": 1.0}\n'}, {},
     ("error", "not whole numbers")),
    ("integer-labels-1-to-3", {"train.csv": csv_text([(f"t{i}", 1 + i % 3) for i in range(9)])}, {},
     ("labels", ["1", "2", "3"])),
    ("class-without-training-rows", {"train.csv": csv_text(balanced(4))}, {"labels": ["neg", "pos", "neutral"]},
     ("error", "class(es) neutral have no training rows")),
    ("one-class-train", {"train.csv": csv_text([(f"t{i}", "pos") for i in range(5)])}, {},
     ("error", "one class only (pos)")),
    ("test-class-unseen-in-train", {"train.csv": csv_text(balanced(4)), "test.csv": csv_text([("x", "neutral")])},
     {}, ("error", "split 'test' has label(s) ['neutral'] that train does not have")),
    ("invalid-utf8", {"train.csv": b"text,label\nok,pos\nbad \xff byte,neg\n"}, {}, ("error", "not valid UTF-8 (line 3")),
    ("utf8-bom", {"train.csv": "\ufeff" + csv_text(balanced(4))}, {},
     ("kept", {"train": 4}, {}, {"train": [t for t, _ in balanced(4)]})),
    ("odd-characters-csv", {"train.csv": csv_text(balanced(8, ODD_TEXTS))}, {},
     ("kept", {"train": 8}, {}, {"train": ODD_TEXTS})),
    ("odd-characters-jsonl", {"train.jsonl": jsonl_text(balanced(8, ODD_TEXTS))}, {},
     ("kept", {"train": 8}, {}, {"train": ODD_TEXTS})),
    ("tsv-stray-quotes", {"train.tsv": tsv_text([('"unclosed quote starts this', "neg"), ('"urgent" refund', "pos"),
                                                 ('ends with a quote"', "neg"), ('a "" doubled', "pos")])}, {},
     ("kept", {"train": 4}, {}, {"train": ['"unclosed quote starts this', '"urgent" refund', 'ends with a quote"',
                                            'a "" doubled']})),
    ("tsv-extra-tab", {"train.tsv": "text\tlabel\nfine\tpos\ntab\tinside\tneg\n"}, {},
     ("error", "train.tsv line 3: expected 2 fields, saw 3")),
    ("csv-unclosed-quote", {"train.csv": 'text,label\n"never closed,pos\nnext,neg\n'}, {},
     ("error", "train.csv line 2: expected 2 fields, saw 1")),
    ("duplicate-rows", {"train.csv": csv_text(balanced(4) + balanced(2) + [("review number 0", "neg")]),
                        "test.csv": csv_text([("review number 1", "neg"), ("fresh", "pos")])}, {},
     ("duplicates", {"train": {"repeated_rows": 3, "texts_with_conflicting_labels": 1}}, {"test_in_train": 1})),
]


def parquet_bytes(table, **kwargs):
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue().to_pybytes()


def damaged(data, start, length):
    """``data`` with ``length`` bytes from ``start`` inverted (inside a data page of a larger file)."""
    return data[:start] + bytes(b ^ 0xFF for b in data[start:start + length]) + data[start + length:]


ODD_PARQUET = parquet_bytes(pa.table({"text": pa.array(ODD_TEXTS).dictionary_encode(),
                                      "label": pa.array([y for _, y in balanced(8)]).dictionary_encode()}))
BIG_PARQUET = parquet_bytes(pa.table({"text": [f"review {i} " + "x" * (i % 50) for i in range(20_000)],
                                      "label": [i % 2 for i in range(20_000)]}), row_group_size=5_000)
CASES += [
    ("parquet-zero-rows", {"train.parquet": parquet_bytes(pa.table({"text": pa.array([], pa.string()),
                                                                    "label": pa.array([], pa.int64())}))},
     {}, ("error", "train.parquet has no data rows")),
    ("parquet-truncated", {"train.parquet": ODD_PARQUET[: len(ODD_PARQUET) // 2]}, {},
     ("error", "train.parquet as parquet: ArrowInvalid")),
    # the footer reads fine: the damage shows up mid-pass, and is still one line with nothing written
    ("parquet-damaged-page", {"train.parquet": damaged(BIG_PARQUET, len(BIG_PARQUET) // 2, 2000)}, {},
     ("error", "train.parquet as parquet: OSError: Corrupt snappy compressed data")),
    ("parquet-dictionary-columns", {"train.parquet": ODD_PARQUET}, {},
     ("kept", {"train": 8}, {}, {"train": ODD_TEXTS})),
]


def write_files(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(folder / name, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
            f.write(content)


def run_ingest(tmp_path, files, overrides):
    write_files(tmp_path / "data", files)
    block = {"name": "x", "source": "files", "path": str(tmp_path / "data"), "validation_fraction": 0.0, **overrides}
    return ingest(DatasetConfig.from_block(block).resolve(), tmp_path / "raw")


def read_back(tmp_path, split):
    return pq.read_table(tmp_path / "raw" / f"{split}.parquet").column("text").to_pylist()


@pytest.mark.parametrize("files,overrides,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input(tmp_path, files, overrides, expected):
    kind = expected[0]
    if kind == "error":
        with pytest.raises(PipelineError) as err:
            run_ingest(tmp_path, files, overrides)
        assert expected[1] in str(err.value) and "\n" not in str(err.value), str(err.value)
        assert not (tmp_path / "raw").exists()
        return
    stats = run_ingest(tmp_path, files, overrides)
    if kind == "labels":
        assert stats["labels"] == expected[1]
        (name, text), = files.items()
        assert sum(stats["rows"].values()) == len(text.splitlines()) - (not name.endswith(".jsonl"))  # less a header
    elif kind == "duplicates":
        assert {s: stats["duplicates"][s] for s in expected[1]} == expected[1]
        assert stats["overlap"] == expected[2]
    else:
        _, rows, dropped, texts = expected
        assert stats["rows"] == rows
        for split, counts in dropped.items():
            assert {k: v for k, v in stats["dropped"][split].items() if v} == counts
        for split, want in texts.items():
            assert read_back(tmp_path, split) == want


def test_one_20_mb_document_and_100k_one_word_documents_are_kept_whole(tmp_path):
    rng = np.random.default_rng(0)
    words = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])
    big = " ".join(rng.choice(words, 3_500_000))
    assert len(big) > 20_000_000
    small = [f"w{i}" for i in range(100_000)]
    rows = [(big, "pos")] + [(w, "neg" if i % 2 else "pos") for i, w in enumerate(small)]
    stats = run_ingest(tmp_path, {"train.csv": csv_text(rows)}, {})
    assert stats["rows"] == {"train": 100_001}
    back = read_back(tmp_path, "train")
    assert back[0] == big and back[1:] == small


def test_edited_file_with_same_size_and_mtime_is_read_again(tmp_path):
    files = {"train.csv": csv_text(balanced(4, ["good", "bad1", "fine", "poor"]))}
    run_ingest(tmp_path, files, {})
    path = tmp_path / "data" / "train.csv"
    stamp = os.stat(path)
    path.write_text(csv_text(balanced(4, ["nice", "bad2", "okay", "weak"])), encoding="utf-8")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # as `cp -p` or a restored backup leaves it
    assert os.stat(path).st_size == stamp.st_size and os.stat(path).st_mtime_ns == stamp.st_mtime_ns
    run_ingest(tmp_path, {}, {})
    assert read_back(tmp_path, "train") == ["nice", "bad2", "okay", "weak"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # its cache left nothing behind


@pytest.mark.parametrize("make", ["fifo", "device"])
def test_device_or_fifo_fails_in_one_line_instead_of_hanging(tmp_path, make):
    data = tmp_path / "data"
    data.mkdir()
    if make == "fifo":
        os.mkfifo(data / "train.csv")
    else:
        os.symlink("/dev/zero", data / "train.csv")
    with pytest.raises(PipelineError, match="train.csv is not a regular file"):
        run_ingest(tmp_path, {}, {})


def test_unreachable_hub_fails_in_seconds_with_the_offline_hint(monkeypatch, tmp_path):
    import time

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    t = time.monotonic()
    with pytest.raises(PipelineError) as err:
        ingest(DatasetConfig.from_block({"name": "imdb"}).resolve(), tmp_path / "raw")
    assert time.monotonic() - t < 5
    assert str(err.value).startswith("cannot reach the Hugging Face hub at http://127.0.0.1:9")
    assert str(err.value).endswith("use a local copy with dataset.source=files")


def test_id_column_is_carried_into_raw_and_the_reports_examples(tmp_path):
    import numpy as np
    import pyarrow as pa

    from pipeline.evaluate import example_rows

    rows = [("T-1", "refund please", "billing"), ("T-2", "app crashes", "tech"), ("T-3", "", "tech"),
            ("T-4", "invoice wrong", "billing")]
    files = {"train.csv": csv_text([(t, y, i) for i, t, y in rows], ("text", "label", "ticket"))}
    stats = run_ingest(tmp_path, files, {"id_column": "ticket"})
    assert stats["rows"] == {"train": 3} and {k: v for k, v in stats["dropped"]["train"].items() if v} == {"null_text": 1}
    raw = pq.read_table(tmp_path / "raw" / "train.parquet")
    assert raw.column_names == ["text", "label", "id"] and raw.column("id").to_pylist() == ["T-1", "T-2", "T-4"]
    header, examples = example_rows(np.array([2, 0]), np.array([0, 0]), np.array([1, 1]), np.array([0.8, 0.9]),
                                    ["billing", "tech"], tmp_path / "raw" / "train.parquet")
    assert header == ["id", "actual", "predicted", "p", "text"]
    assert examples == [["T-4", "billing", "tech", "0.80", "invoice wrong"], ["T-1", "billing", "tech", "0.90", "refund please"]]
    with pytest.raises(PipelineError, match="has no column 'nope'.*dataset.id_column"):
        run_ingest(tmp_path / "again", files, {"id_column": "nope"})
    pq.write_table(pa.table({"text": ["a"], "label": [0]}), tmp_path / "plain.parquet")
    assert example_rows(np.array([0]), np.array([0]), np.array([1]), np.array([0.6]),
                        ["billing", "tech"], tmp_path / "plain.parquet") == (
        ["actual", "predicted", "p", "text"], [["billing", "tech", "0.60", "a"]])
