"""What ``textpipe check`` verifies besides each param's type and range: the spaCy language and
the files that later stages will read, found without doing their work, so that a typo stops
``dvc repro`` before ingest instead of after hours of preprocessing. The stages check the same
things again when they run on their own (``textpipe <stage>``). Nothing heavy is imported for
what is not set: ``check`` runs on every ``dvc repro``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .core.errors import PipelineError


GATES = {"lstm": 4, "gru": 3, "rnn": 1}
BYTES_PER_PARAM = 4 * 6  # fp32: weights, gradients, Adam's two moments, the best epoch's copy, a resume point's


def model_parameters(train: Any, vocab_size: int) -> int:
    """Parameters of the classifier ``train`` builds over a vocabulary of ``vocab_size`` (classes aside)."""
    h, directions = train.hidden_size, 2 if train.bidirectional else 1
    rnn, width = 0, train.embed_dim
    for _ in range(train.num_layers):
        rnn += directions * GATES[train.rnn_type] * (h * (width + h) + 2 * h)
        width = h * directions
    return vocab_size * train.embed_dim + rnn


def check_model_memory(configs: dict[str, Any], available: int | None = None) -> None:
    """Refuse, before any work, a model whose training state would not fit in this machine's free memory
    (the kernel would otherwise kill training with no word). A vocabulary without a cap counts 40,000 words."""
    import psutil

    train = configs["train"]
    params = model_parameters(train, configs["vocab"].max_size or 40_000)
    need = params * BYTES_PER_PARAM
    available = psutil.virtual_memory().available if available is None else available
    if need > available:
        raise PipelineError(f"the model would have {params:,} parameters, whose training state needs about "
                            f"{need / 2**30:,.1f} GiB, more than the {available / 2**30:,.1f} GiB free here; lower "
                            "train.hidden_size, train.embed_dim, train.num_layers or vocab.max_size")


def check_inputs(configs: dict[str, Any]) -> None:
    """Raise PipelineError for the first input a stage would not find (``configs``: every block), or a
    model that would not fit in memory."""
    tokenize, vectors, train = configs["tokenize"], configs["vectors"], configs["train"]
    check_spacy(tokenize.lang, tokenize.spacy_pipeline)
    check_model_memory(configs)
    corpora = vectors.corpora if vectors.method != "none" else []  # read only when vectors are trained
    if corpora or train.vectors:
        from .vectors import check_vectors_file, corpus_files

        for entry in corpora:
            corpus_files(entry)
        if train.vectors:
            check_vectors_file(train.vectors)


def check_spacy(lang: str, spacy_pipeline: str | None) -> None:
    """Refuse a spaCy language or pipeline that :func:`pipeline.tokenize.load_tokenizer` would not
    find, without importing spaCy (2 s): a pipeline is an installed package or a folder; a language
    is one of spaCy's ``spacy/lang/<code>`` modules or one a package registers (``spacy_languages``)."""
    import importlib.metadata
    import importlib.util

    if spacy_pipeline:
        try:
            found = Path(spacy_pipeline).is_dir() or importlib.util.find_spec(spacy_pipeline) is not None
        except (ImportError, ValueError):  # a dotted name whose parent is missing, or no module name at all
            found = False
        if not found:
            raise PipelineError(f"cannot load spaCy pipeline '{spacy_pipeline}': no installed package or folder of "
                                "that name; install it (python -m spacy download NAME) or use tokenize.lang")
        return
    spacy = importlib.util.find_spec("spacy")
    known = {e.name for e in importlib.metadata.entry_points(group="spacy_languages")}
    folders = [Path(d) / "lang" / lang for d in (spacy.submodule_search_locations or [])] if spacy else []
    if lang not in known and not any((f / "__init__.py").is_file() for f in folders):
        raise PipelineError(f"cannot load spaCy language '{lang}': spaCy has no language of that code; "
                            "use one it has (en, de, fr, es, ..., xx for any) or tokenize.spacy_pipeline")
