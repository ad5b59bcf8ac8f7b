"""What ``textpipe check`` verifies besides each param's type and range: the spaCy language and
the files that later stages will read, found without doing their work, so that a typo stops
``dvc repro`` before ingest instead of after hours of preprocessing. The stages check the same
things again when they run on their own (``textpipe <stage>``). Nothing heavy is imported for
what is not set: ``check`` runs on every ``dvc repro``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .core.errors import PipelineError


def check_inputs(configs: dict[str, Any]) -> None:
    """Raise PipelineError for the first input a stage would not find (``configs``: every block)."""
    tokenize, vectors, train = configs["tokenize"], configs["vectors"], configs["train"]
    check_spacy(tokenize.lang, tokenize.spacy_pipeline)
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
