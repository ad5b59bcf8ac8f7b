"""Typed params: the defaults' one home, type and range checks, and one-line errors end to end."""
import dataclasses
import subprocess
import sys

import pytest
import yaml

from pipeline.core.config import BLOCKS, DatasetConfig, TokenizeConfig, TrainConfig, read_all
from pipeline.core.errors import PipelineError

from .helpers import REPO, run_cli


def test_params_yaml_equals_the_config_defaults_field_by_field():
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    assert list(shipped) == list(BLOCKS)
    for name, cls in BLOCKS.items():
        defaults = cls().to_dict()
        assert list(shipped[name]) == list(defaults), name  # same keys, same order
        for key, value in defaults.items():
            assert shipped[name][key] == value and type(shipped[name][key]) in (type(value), int), f"{name}.{key}"
    assert {k: v.to_dict() for k, v in read_all(shipped).items()} == {k: c().to_dict() for k, c in BLOCKS.items()}


def test_every_field_has_a_type_the_checker_knows():
    for cls in BLOCKS.values():
        cls.from_block({f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("block,key,value,message", [
    ("train", "lr", "abc", "train.lr must be a finite number, got 'abc'"),
    ("train", "epochs", "ten", "train.epochs must be a whole number, got 'ten'"),
    ("train", "epochs", 2.5, "train.epochs must be a whole number, got 2.5"),
    ("train", "batch_size", 0, "train.batch_size must be >= 1, got 0"),
    ("train", "min_batches", -1, "train.min_batches must be >= 0, got -1"),
    ("train", "lr", 0, "train.lr must be > 0.0, got 0"),
    ("train", "dropout", 1.0, "train.dropout must be >= 0.0 and < 1.0, got 1.0"),
    ("train", "device", "gpu", "train.device must be one of auto, cpu, cuda, mps, got 'gpu'"),
    ("train", "bidirectional", "yes", "train.bidirectional must be true or false, got 'yes'"),
    ("train", "vectors", 3, "train.vectors must be text or null, got 3"),
    ("bucket", "max_len", "abc", "bucket.max_len must be a whole number, got 'abc'"),
    ("bucket", "max_len", -1, "bucket.max_len must be >= 0, got -1"),
    ("bucket", "keep_head", 1.5, "bucket.keep_head must be >= 0.0 and <= 1.0, got 1.5"),
    ("bucket", "boundaries", "8", "bucket.boundaries must be a whole number or a list of whole numbers, got '8'"),
    ("vocab", "min_freq", "two", "vocab.min_freq must be a whole number, got 'two'"),
    ("vocab", "max_size", True, "vocab.max_size must be a whole number, got True"),
    ("tokenize", "workers", -2, "tokenize.workers must be >= 0, got -2"),
    ("shard", "shard_size_mb", 0, "shard.shard_size_mb must be > 0.0, got 0"),
    ("ingest", "empty_text", "skip", "ingest.empty_text must be one of drop, keep, got 'skip'"),
    ("dataset", "validation_fraction", 1.5, "dataset.validation_fraction must be >= 0.0 and < 1.0, got 1.5"),
    ("dataset", "labels", "neg,pos", "dataset.labels must be a list of texts or whole numbers or null, got 'neg,pos'"),
    ("evaluate", "split", "dev", "evaluate.split must be one of auto, test, validation, got 'dev'"),
    ("train", "lr", float("inf"), "train.lr must be a finite number, got inf"),  # trained to a NaN loss before
    ("train", "clip_grad", float("-inf"), "train.clip_grad must be a finite number, got -inf"),
    ("train", "seed", -1, "train.seed must be >= 0 and < 4294967296, got -1"),
    ("dataset", "seed", 2**32, "dataset.seed must be >= 0 and < 4294967296, got 4294967296"),
    ("vectors", "seed", 2**40, "vectors.seed must be >= 0 and < 4294967296"),
    ("bucket", "seed", -5, "bucket.seed must be >= 0 and < 4294967296"),
])
def test_wrong_type_or_range_is_one_line_naming_key_value_and_allowed(block, key, value, message):
    with pytest.raises(PipelineError) as err:
        BLOCKS[block].from_block({key: value})
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("train_rows,params,rows", [
    (5_472, {}, 55),      # AG News' train split here: 5,472 / 100 rounded up
    (2_160, {}, 22),      # the demo's
    (12_800, {}, 128),    # 100 x batch_size: from here on batch_size
    (12_700, {}, 127),
    (22_500, {}, 128),    # IMDB's and SST-2's: unchanged
    (63_982, {}, 128),
    (81, {}, 8),          # never below MIN_BATCH_ROWS
    (81, {"batch_size": 4}, 4),  # ... but never above batch_size either
    (5_472, {"min_batches": 0}, 128),  # off
    (5_472, {"min_batches": 50, "batch_size": 64}, 64),
    (5_472, {"min_batches": 200}, 28),
])
def test_rows_per_batch_gives_a_small_train_split_about_min_batches_batches(train_rows, params, rows):
    assert TrainConfig.from_block(params).rows_per_batch(train_rows) == rows


def test_unknown_keys_and_blocks_and_cross_field_rules():
    with pytest.raises(PipelineError, match="^unknown key\\(s\\) in params block 'train': lrate; known keys: seed, epochs"):
        TrainConfig.from_block({"lrate": 0.1})
    with pytest.raises(PipelineError, match="^unknown params block\\(s\\) trian; known blocks: dataset, ingest"):
        read_all({"trian": {}})
    with pytest.raises(PipelineError, match="^dataset.labels names pos more than once"):
        DatasetConfig.from_block({"labels": ["neg", "pos", "pos"]})
    with pytest.raises(PipelineError, match="must be < 1 \\(train needs rows\\)"):
        DatasetConfig.from_block({"validation_fraction": 0.5, "test_fraction": 0.5})
    assert DatasetConfig.from_block({"labels": [1, 2]}).resolve().labels == ["1", "2"]
    assert DatasetConfig.from_block(None) == DatasetConfig()
    with pytest.raises(PipelineError, match="^train.embedding_grad: sparse runs on one process; with train.nproc > 1"):
        TrainConfig.from_block({"embedding_grad": "sparse", "nproc": 2})
    with pytest.raises(PipelineError, match="^train.embedding_grad: sparse has no weight decay; set train.weight_decay: 0"):
        TrainConfig.from_block({"embedding_grad": "sparse", "weight_decay": 0.01})
    # auto: lazy Adam on one process without weight decay, dense Adam otherwise
    assert [TrainConfig.from_block(b).sparse_embedding(world) for b, world in [
        ({}, 1), ({}, 2), ({"weight_decay": 0.01}, 1), ({"embedding_grad": "dense"}, 1), ({"embedding_grad": "sparse"}, 1)]
    ] == [True, False, False, False, True]


def test_only_content_params_are_recorded():
    cfg = TokenizeConfig(workers=2, chunk_size=10)
    assert cfg.content_params() == {"lang": "en", "spacy_pipeline": None, "lowercase": True, "strip_html": True,
                                    "normalize_whitespace": True}
    assert TrainConfig().content_params() == TrainConfig().to_dict()


@pytest.mark.parametrize("args,params,stderr", [
    (["check"], {"train": {"lr": "abc"}}, "Error: train.lr must be a finite number, got 'abc'; fix it in params.yaml (or -S train.lr=...)\n"),
    (["train"], {"train": {"epochs": "ten"}}, "Error: train.epochs must be a whole number, got 'ten'; fix it in params.yaml (or -S train.epochs=...)\n"),
    (["tokenize"], {"dataset": {"name": ".."}}, "Error: dataset.name '..' is not a safe folder name; use letters, digits, "
                                                "'_', '-' and '.' (not first), at most 100 characters, e.g. 'imdb' or 'tickets-2024'\n"),
    (["vocab"], {"vocab": {"min_freq": "two"}}, "Error: vocab.min_freq must be a whole number, got 'two'; fix it in params.yaml (or -S vocab.min_freq=...)\n"),
    (["bucket"], {"bucket": {"max_lenn": 3}}, "Error: unknown key(s) in params block 'bucket': max_lenn; known keys: max_len, keep_head, boundaries, batch_size, seed\n"),
    (["check"], {"dataset": {"name": "nosuch"}}, "Error: dataset 'nosuch' is not a preset (demo, imdb, sst2, ag_news); set dataset.source (files or hub) and dataset.path\n"),
    (["check"], {"vectors": {"method": "word2vec", "dim": 64}}, "Error: vectors.dim (64) must equal train.embed_dim (128): "
                                                                "the vectors start the embedding; set both to one value\n"),
    (["check"], {"vectors": {"method": "word2vec"}, "train": {"vectors": "glove.txt"}},
     "Error: train.vectors is set and vectors.method is word2vec; keep one: set train.vectors: null or vectors.method: none\n"),
    (["check"], {"tokenize": {"lang": "zz"}}, "Error: cannot load spaCy language 'zz': spaCy has no language of that "
                                              "code; use one it has (en, de, fr, es, ..., xx for any) or tokenize.spacy_pipeline\n"),
    (["check"], {"tokenize": {"spacy_pipeline": "en_core_web_nosuch"}}, "Error: cannot load spaCy pipeline "
     "'en_core_web_nosuch': no installed package or folder of that name; install it (python -m spacy download NAME) "
     "or use tokenize.lang\n"),
    (["check"], {"vectors": {"method": "word2vec", "corpora": ["unlabelled"]}},
     "Error: vectors.corpora entry unlabelled does not exist; list files or folders of unlabelled text\n"),
    # the vectors stage trains word2vec by default, so a file of your own needs it off
    (["check"], {"train": {"vectors": "glove.txt"}},
     "Error: train.vectors is set and vectors.method is word2vec; keep one: set train.vectors: null or vectors.method: none\n"),
    (["check"], {"vectors": {"method": "none"}, "train": {"vectors": "glove.txt"}},
     "Error: train.vectors file glove.txt not found; give a GloVe/word2vec text file or null\n"),
    (["train", "--nope"], {}, "Error: No such option '--nope'; see `textpipe train --help`\n"),
    (["nosuch"], {}, "Error: No such command 'nosuch'; see `textpipe --help`\n"),
    (["predict", "--file"], {}, "Error: Option '--file' requires an argument; see `textpipe predict --help`\n"),
])
def test_user_errors_through_the_console_script_are_one_line_exit_2(tmp_path, args, params, stderr):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_cli(*args, cwd=tmp_path, check=False)
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, stderr, ""), proc.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"], "nothing may be written"


def test_unavailable_device_is_refused_before_work(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"device": "cuda"}}))
    proc = run_cli("check", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr == ("Error: train.device is 'cuda' but this machine has no CUDA device that torch can use; "
                           "set train.device to auto or cpu\n")


@pytest.mark.parametrize("dataset,evaluate,error", [
    ({"validation_fraction": 0.0}, "auto", "Error: dataset mine has no validation file and dataset.validation_fraction "
     "is 0; training needs a validation split (early stopping, the checkpoint it keeps): give a validation file or set "
     "dataset.validation_fraction > 0\n"),
    ({}, "test", "Error: evaluate.split is test, but dataset mine has no test file and dataset.test_fraction is 0; set "
     "evaluate.split: auto (or validation), give a test file or set dataset.test_fraction > 0\n"),
    ({"test_fraction": 0.2}, "test", ""),  # carved
    ({"validation_fraction": 0.0, "splits": {"train": "train", "validation": "train"}}, "auto", ""),  # a file of its own
])
def test_splits_that_training_or_evaluation_need_are_checked_before_work(tmp_path, dataset, evaluate, error):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("text,label\ngood,1\nbad,0\nfine,1\nawful,0\n")
    block = {"name": "mine", "source": "files", "path": "data", **dataset}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"dataset": block, "evaluate": {"split": evaluate}}))
    proc = run_cli("check", cwd=tmp_path, check=False)
    assert (proc.returncode, proc.stderr) == ((2, error) if error else (0, "")), proc.stderr


def test_check_finds_the_spacy_languages_that_load():
    from pipeline.preflight import check_spacy
    from pipeline.tokenize import load_tokenizer

    for lang in ("en", "de", "xx"):
        check_spacy(lang, None)
        assert load_tokenizer(lang)("a b").text == "a b"
    with pytest.raises(PipelineError, match="spaCy language 'zz'"):
        check_spacy("zz", None)
    with pytest.raises(PipelineError, match="spaCy language 'zz'"):
        load_tokenizer("zz")


def test_bf16_is_checked_against_this_cpu_before_work(tmp_path):
    from pipeline.model import native_bf16_cpu

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"precision": "bf16", "device": "cpu"}}))
    proc = run_cli("check", cwd=tmp_path, check=False)
    if native_bf16_cpu():
        assert proc.returncode == 0, proc.stderr
    else:
        assert (proc.returncode, proc.stderr) == (2, "Error: train.precision: bf16 needs a CPU with native bfloat16 "
                                                     "(AVX512-BF16 or AMX), and this one has none; set train.precision: fp32\n")


def test_help_and_bad_params_file():
    shown = run_cli("--help")
    assert "Commands (in pipeline order)" in shown.stdout and shown.stdout.count("\n") > 10
    assert run_cli().stdout == shown.stdout  # bare `textpipe` shows the help too, exit 0 (run_cli checks)
    proc = run_cli("check", "--params", "/nonexistent/params.yaml", check=False)
    assert (proc.returncode, proc.stderr) == (2, "Error: params file /nonexistent/params.yaml not found; run from the "
                                                 "project folder or pass --params\n")


@pytest.mark.parametrize("text,where", [
    ("train:\n  epochs: 3\n  lr: [0.1\n", "at line 3, column 7 (while parsing a flow sequence): expected ',' or ']', "
                                           "but got '<stream end>'"),
    ("train:\n\tlr: 0.1\n", "at line 2, column 1 (while scanning for the next token): found character '\\t' that "
                             "cannot start any token"),
])
def test_broken_params_yaml_names_its_line(tmp_path, text, where):
    (tmp_path / "params.yaml").write_text(text)
    proc = run_cli("check", cwd=tmp_path, check=False)
    assert (proc.returncode, proc.stderr) == (2, f"Error: params file params.yaml is not valid YAML {where}; fix that line\n")


def test_cli_module_does_not_import_torch_or_spacy():
    code = "import sys, stages.cli; print(sorted(m for m in ('torch', 'spacy', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_every_command_help_imports_no_heavy_library():
    """`textpipe <cmd> --help` loads each command's module but neither torch, spaCy, gensim, datasets
    nor matplotlib (what made `textpipe predict --help` take 7 s); the figures are in BENCHMARKS.md."""
    code = ("import contextlib, io, sys\nfrom stages.cli import COMMANDS, cli\n"
            "for name in COMMANDS:\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "        cli.main([name, '--help'], prog_name='textpipe', standalone_mode=False)\n"
            "    assert 'Usage: textpipe ' + name in out.getvalue(), name\n"
            "print(len(COMMANDS), sorted(m for m in ('torch', 'spacy', 'gensim', 'datasets', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "11 []"


def test_a_key_given_twice_in_params_yaml_is_refused_with_both_lines(tmp_path):
    from pipeline.core.params import load_params

    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.01\n  epochs: 3\n  lr: 0.5\n")
    with pytest.raises(PipelineError, match=r"params.yaml: key 'lr' is given twice, at lines 2 and 4; keep one$"):
        load_params(path)
    path.write_text("train:\n  lr: 0.01\ntrain:\n  epochs: 3\n")
    with pytest.raises(PipelineError, match="key 'train' is given twice, at lines 1 and 3"):
        load_params(path)
    path.write_text("train: {lr: 0.01}\nvocab: {lr: 0.01}\n")  # the same key in two mappings is fine
    assert load_params(path) == {"train": {"lr": 0.01}, "vocab": {"lr": 0.01}}


@pytest.mark.parametrize("block,message", [
    ({"label_column": "text"}, "dataset.text_column and dataset.label_column both name the column 'text'"),
    ({"text_column": "body", "id_column": "body"}, "dataset.text_column and dataset.id_column both name the column 'body'"),
    ({"id_column": "label"}, "dataset.label_column and dataset.id_column both name the column 'label'"),
])
def test_the_text_label_and_id_columns_must_differ(block, message):
    with pytest.raises(PipelineError, match=message):
        DatasetConfig.from_block({"name": "x", "source": "files", "path": "d", **block}).resolve()


def test_dataset_name_may_not_take_what_textpipe_keeps_beside_the_datasets():
    for name in ("metrics", "plots", "check.json"):
        with pytest.raises(PipelineError, match=f"dataset.name '{name}' is taken by artifacts/{name}"):
            DatasetConfig.from_block({"name": name})


def test_a_model_too_big_for_the_free_memory_is_refused_before_work():
    from pipeline.model import TextClassifier
    from pipeline.preflight import check_model_memory, model_parameters

    configs = read_all({"train": {"hidden_size": 24, "num_layers": 2, "embed_dim": 16}, "vocab": {"max_size": 300},
                        "vectors": {"dim": 16}})
    model = TextClassifier(300, 2, embed_dim=16, hidden_size=24, num_layers=2)
    head = sum(p.numel() for p in model.head.parameters())
    assert model_parameters(configs["train"], 300) == sum(p.numel() for p in model.parameters()) - head
    check_model_memory(configs, available=2**30)  # fits
    with pytest.raises(PipelineError, match=r"^the model would have [\d,]+ parameters, whose training state needs "
                                            r"about [\d.]+ GiB, more than the 0.0 GiB free here; lower train.hidden_size"):
        check_model_memory(configs, available=1000)
    huge = read_all({"train": {"hidden_size": 1_000_000}})
    with pytest.raises(PipelineError, match="more than the"):
        check_model_memory(huge)
