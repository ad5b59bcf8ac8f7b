"""textpipe: DVC-orchestrated preprocessing and training for text classification.

The library is organised by job; stage modules write the artifact their
docstring describes:

- :mod:`pipeline.core`       what every stage imports (one DVC dep):
  :mod:`~pipeline.core.registry` the stages, what each reads, writes and depends on;
  :mod:`~pipeline.core.config` one typed, checked config per params block (the only defaults);
  :mod:`~pipeline.core.params` reading params.yaml, checking types and ranges;
  :mod:`~pipeline.core.layout` every artifact path, from the registry;
  :mod:`~pipeline.core.schema` split names and the class names artifacts carry;
  :mod:`~pipeline.core.fileio`, :mod:`~pipeline.core.integrity` atomic writes and checksums;
  :mod:`~pipeline.core.procs` worker processes; :mod:`~pipeline.core.errors` the one-line errors
- :mod:`pipeline.sources`    reading demo / local files / hub datasets
- :mod:`pipeline.ingest`     stage ingest: clean, carve, write raw Parquet
- :mod:`pipeline.tokenize`   stage tokenize: spaCy over all cores
- :mod:`pipeline.vocab`      stage vocab: the frequency-capped :class:`Vocabulary`
- :mod:`pipeline.vectors`    stage vectors: word2vec, and reading vectors files
- :mod:`pipeline.buckets`    stage bucket: ids, length buckets, padding waste
- :mod:`pipeline.shards`     stage shard: :class:`ShardWriter`, memory-mapped :class:`ShardReader`
- :mod:`pipeline.sampler`    :class:`LengthBucketSampler` and batch collation
- :mod:`pipeline.model`      the recurrent classifier (packed and fused fast paths)
- :mod:`pipeline.checkpoint` device choice, building models, saving and loading model.pt
- :mod:`pipeline.inference`  a model over a whole split (training's validation and evaluate)
- :mod:`pipeline.train`      stage train: :class:`Trainer`
- :mod:`pipeline.evaluate`   stage evaluate; :mod:`pipeline.report` renders report.md and plots
- :mod:`pipeline.predict`    :class:`Predictor` for new text
"""

__version__ = "0.1.0"
