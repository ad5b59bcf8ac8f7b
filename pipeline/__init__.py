"""textpipe: DVC-orchestrated preprocessing and training for text classification.

The library is organised by stage; each module has one job:

- :mod:`pipeline.datasets`  load a dataset (demo, local files, hub) into raw Parquet
- :mod:`pipeline.tokenize`  normalise and tokenize text with spaCy over all cores
- :mod:`pipeline.vocab`     the frequency-capped :class:`Vocabulary`
- :mod:`pipeline.vectors`   word2vec vectors from unlabelled text, for the embedding
- :mod:`pipeline.buckets`   ids, length buckets and padding-waste figures
- :mod:`pipeline.shards`    :class:`ShardWriter` and the memory-mapped :class:`ShardReader`
- :mod:`pipeline.sampler`   :class:`LengthBucketSampler`
- :mod:`pipeline.model`     the recurrent classifier (packed and fused fast paths)
- :mod:`pipeline.train`, :mod:`pipeline.evaluate`, :mod:`pipeline.predict`
"""

__version__ = "0.1.0"
