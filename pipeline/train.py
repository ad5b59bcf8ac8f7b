"""Stage ``train``: fit the classifier on the shards.

Output contract (``<out>/``), content only, so identical training gives
identical bytes and DVC reruns nothing after it::

    model.pt     the best checkpoint (by validation accuracy); schema in
                 :mod:`pipeline.checkpoint`
    history.csv  one row per epoch: epoch, train_loss, train_acc, val_loss,
                 val_acc, padding_waste (what evaluate plots)
    stats.json   epochs run, best epoch, steps, the row cap of a batch
                 (``batch_rows``: see ``TrainConfig.rows_per_batch``), rnn_impl,
                 parameters, the vectors file used, the vectors params that
                 trained it and how many vocabulary words it covered, and ``partial_epoch`` (null, or what
                 ``train.max_steps`` left of the last epoch)
    params.json  the train params

:meth:`Trainer.fit` returns the run's timings and host facts (seconds,
tokens/s, device, threads, resumed) separately; the stage writes them to its
DVC metrics file and to the DVC plots CSV (the history plus tokens/s).

A resume point (``last.pt`` under ``resume_dir``) is written after every
epoch and every ``train.resume_every`` optimizer steps within one, and removed
when training ends; a rerun with the same config continues from it, mid-epoch
included (the epoch's batch order is rebuilt from its seed, the batches done
are skipped, the RNG state is restored), and ends with the same weights as a
run that was never stopped. A resume point carries the digest of its content
(:func:`pipeline.checkpoint.with_digest`); one that cannot be read or does not
match it is set aside (``last.pt.corrupt``) with a one-line warning and
training starts afresh.

Under torchrun (``train.nproc`` > 1, :mod:`pipeline.distributed`) every rank
trains on its share of each epoch's batches through DistributedDataParallel;
losses and counts are summed over ranks, every rank validates on the whole
validation split (same weights, same result, same early-stopping decision),
and only rank 0 writes checkpoints, history and outputs.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import build_model, digest_matches, make_checkpoint, pick_device, save_checkpoint, with_digest
from .core.config import TrainConfig
from .cpu_share import ThreadGovernor
from .distributed import World, rank_batches
from .core.errors import PipelineError
from .core.fileio import atomic_path, read_json, sha256_file, write_csv, write_json
from .inference import score_split
from .core.integrity import sealed_dir, verify_dir
from .model import check_precision, step_autocast
from .optim import ClassifierOptimizer, clip_grad_norm, schedule_factor
from .progress import Heartbeat, log
from .sampler import LengthBucketSampler, collate
from .shards import ShardReader
from .vectors import load_vectors, pick_vectors
from .vocab import Vocabulary

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "padding_waste")
PLOT_FIELDS = (*HISTORY_FIELDS, "tokens_per_s")
RESUME_KEYS = ("epoch", "step", "batches_done", "sums", "history", "speed", "best", "best_state", "model",
               "optimizer", "torch_rng")


def vectors_settings(vectors: Path | None, vectors_dir: str | Path | None) -> dict | None:
    """The vectors params that trained the file the embedding starts from (the vectors stage's
    ``params.json``), None for a file of the user's own (``train.vectors``) or no vectors."""
    params = Path(vectors_dir) / "params.json" if vectors_dir else None
    if vectors is None or params is None or vectors.parent != Path(vectors_dir) or not params.exists():
        return None
    return read_json(params).get("vectors")


class DamagedResume(Exception):
    """A resume point whose content no longer matches the digest it was written with."""


def config_hash(config: dict, manifest: dict) -> str:
    blob = json.dumps({"config": config, "vocab": manifest["vocab"], "splits": manifest["splits"]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class Trainer:
    """Runs epochs, keeps the best checkpoint, writes history, resumes after an interruption."""

    def __init__(self, shards: str | Path, vocab_path: str | Path, out_dir: str | Path, cfg: TrainConfig,
                 resume_dir: str | Path | None = None, vectors_dir: str | Path | None = None):
        self.cfg = cfg
        self.config = cfg.to_dict()
        self.device = pick_device(cfg.device)
        check_precision(self.device, cfg.precision)
        self.world = World.start(self.device)
        self.out_dir, self.vocab_path = Path(out_dir), Path(vocab_path)
        self.resume_path = Path(resume_dir) / "last.pt" if resume_dir else None
        verify_dir(self.vocab_path.parent, "vocab")
        self.reader = ShardReader(shards, vocab_path=vocab_path)
        self.vocab = Vocabulary.load(vocab_path)
        self.labels = self.reader.labels
        if "validation" not in self.reader.splits:
            raise PipelineError("the shards have no validation split; set dataset.validation_fraction > 0 and rerun")
        self.train_data = self.reader.split("train")
        self.governor = ThreadGovernor.start(cfg.threads, self.world.size)  # follows the machine's free cores
        torch.manual_seed(cfg.seed)
        self.model = build_model(self.config, len(self.vocab), len(self.labels), self.device)
        self.model.embedding.sparse = cfg.sparse_embedding(self.world.size)  # lazy Adam on touched rows
        self.model.word_dropout = cfg.word_dropout
        self.vectors = pick_vectors(cfg.vectors, vectors_dir, vocab_path)
        self.vectors_settings = vectors_settings(self.vectors, vectors_dir)
        self.vectors_covered = None
        if self.vectors:
            weights, self.vectors_covered = load_vectors(self.vectors, self.vocab, cfg.embed_dim)
            self.model.embedding.weight.data.copy_(weights)
        self.net: nn.Module = self.model
        if self.world.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = ClassifierOptimizer(self.model, cfg.optimizer, cfg.lr, cfg.weight_decay)
        self.batch_rows = cfg.rows_per_batch(len(self.train_data.lengths))
        self.sampler = LengthBucketSampler(self.train_data.lengths, self.train_data.buckets, self.batch_rows,
                                           cfg.max_tokens, cfg.padding_noise, shuffle=True, seed=cfg.seed)
        vectors_sha = sha256_file(self.vectors) if self.vectors else None
        self.hash = config_hash({**self.config, "vectors_sha256": vectors_sha}, self.reader.manifest)
        self.history: list[dict] = []
        self.speed: list[float] = []
        self.rows_speed: list[float] = []  # this run's epochs only (not resumed): a timing, not content
        self.best: dict | None = None
        self.best_state: dict | None = None
        self.step = 0
        self.start_epoch = 1
        self.skip_batches = 0  # batches of start_epoch already trained before a mid-epoch resume point
        self.partial: list[float] = []  # that epoch's running sums at the resume point
        self.partial_epoch: str | None = None  # what train.max_steps left of the last epoch, if it cut it

    # ------------------------------------------------------------------ resume
    def _state(self, epoch: int, batches_done: int = 0, sums: list[float] | None = None) -> dict:
        """``epoch``: the last finished epoch; ``batches_done`` of the next one are trained, with ``sums``."""
        return with_digest({
            "hash": self.hash, "epoch": epoch, "step": self.step, "batches_done": batches_done,
            "sums": list(sums or []), "history": self.history, "speed": self.speed,
            "best": self.best, "best_state": self.best_state, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
        })

    def try_resume(self) -> bool:
        if not self.resume_path or not self.resume_path.exists():
            return False
        try:  # a truncated, foreign or damaged file must never block training
            state = torch.load(self.resume_path, map_location=self.device, weights_only=True)
            if not isinstance(state, dict):
                raise TypeError("not a mapping")
            if state.get("hash") != self.hash:
                return False  # a resume point of other params or data: start over
            missing = [k for k in RESUME_KEYS if k not in state]
            if missing:
                raise KeyError(", ".join(missing))
            if not digest_matches(state):
                raise DamagedResume("it does not match its checksum")
        except Exception as exc:
            self._set_aside(exc)
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.history, self.speed, self.best = state["history"], state["speed"], state["best"]
        self.best_state, self.step = state["best_state"], int(state["step"])
        self.start_epoch = int(state["epoch"]) + 1
        self.skip_batches, self.partial = int(state["batches_done"]), [float(x) for x in state["sums"]]
        return True

    def _set_aside(self, exc: Exception) -> None:
        if self.world.main:
            corrupt = self.resume_path.with_name(self.resume_path.name + ".corrupt")
            os.replace(self.resume_path, corrupt)
            why = exc.args[0] if isinstance(exc, DamagedResume) else type(exc).__name__
            self._log(f"warning: resume point {self.resume_path} is unreadable ({why}); "
                      f"moved to {corrupt.name}, training starts afresh")
        self.world.barrier()

    def _save_resume(self, epoch: int, batches_done: int = 0, sums: list[float] | None = None) -> None:
        if self.resume_path and self.world.main:
            self.resume_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.resume_path) as tmp:
                torch.save(self._state(epoch, batches_done, sums), tmp)
        self.world.barrier()

    # ------------------------------------------------------------------ loop
    def train_epoch(self, epoch: int) -> dict:
        """One epoch over this rank's batches; after a mid-epoch resume, the batches done are skipped
        and the epoch's running sums continue from the resume point."""
        self.model.train()
        self.sampler.set_epoch(epoch)
        batches = rank_batches(self.sampler.batches(), self.world.rank, self.world.size)
        skip, self.skip_batches = self.skip_batches, 0
        sums = self.partial if (self.partial and self.world.main) else [0.0] * 5
        self.partial = []
        loss_sum, correct, seen, real, padded = sums[0], int(sums[1]), int(sums[2]), int(sums[3]), int(sums[4])
        start = time.perf_counter()
        beat = Heartbeat(f"epoch {epoch}", len(batches))
        bar = tqdm(total=len(batches), initial=skip, desc=f"epoch {epoch}", unit="batch", disable=None, leave=False)
        trained = skip  # batches of this epoch trained so far
        for done, batch in enumerate(batches[skip:], start=skip + 1):
            if self.cfg.max_steps and self.step >= self.cfg.max_steps:
                break
            trained = done
            ids, lengths, labels = collate(self.train_data, batch)
            ids, labels = ids.to(self.device), labels.to(self.device)
            progress = (epoch - 1 + (done - 1) / len(batches)) / self.cfg.epochs
            self.optimizer.set_schedule(schedule_factor(self.cfg.lr_schedule, self.cfg.lr_warmup, progress))
            with step_autocast(self.device, self.cfg.precision):
                logits = self.net(ids, lengths)
            logits = logits.float()
            loss = nn.functional.cross_entropy(logits, labels)
            value = loss.item()
            if not math.isfinite(value):
                raise PipelineError(f"the training loss became {value} at epoch {epoch}, step {self.step + 1}: training "
                                    f"diverged, and no model was written; lower train.lr (now {self.cfg.lr}) or set "
                                    "train.clip_grad, and check that the vectors are sound")
            self.optimizer.zero_grad()
            loss.backward()
            if self.cfg.clip_grad > 0:
                clip_grad_norm(self.optimizer.params, self.cfg.clip_grad)
            self.optimizer.step()
            self.step += 1
            self.governor.tick()
            n = len(batch)
            loss_sum += value * n
            correct += int((logits.argmax(1) == labels).sum())
            seen += n
            real += int(lengths.sum())
            padded += ids.numel()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
            if self.world.main:
                beat.tick(done, f"loss {loss_sum / seen:.4f} acc {correct / seen:.3f}")
            if self.cfg.resume_every and self.step % self.cfg.resume_every == 0 and done < len(batches):
                self._save_resume(epoch - 1, done, self.world.sum([loss_sum, correct, seen, real, padded]))
        bar.close()
        if trained < len(batches):
            self.partial_epoch = f"epoch {epoch}: {trained} of {len(batches)} batches (train.max_steps)"
            self._log(f"epoch {epoch} is partial: train.max_steps ({self.cfg.max_steps}) stopped it after {trained} "
                      f"of {len(batches)} batches")
        loss_sum, correct, seen, real, padded = self.world.sum([loss_sum, correct, seen, real, padded])
        seconds = time.perf_counter() - start
        return {
            "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
            "padding_waste": (padded - real) / max(padded, 1), "tokens_per_s": real / max(seconds, 1e-9),
            "rows_per_s": seen / max(seconds, 1e-9),
        }

    def fit(self) -> dict:
        """Train; write the outputs; return the run's timings and host facts (not content)."""
        resumed = self.try_resume()
        if resumed:
            self._log(f"resuming from epoch {self.start_epoch} step {self.skip_batches} "
                      f"({self.step} optimizer steps done)")
        self._note_batch_rows()
        self._warn_lone_rows()
        t0 = time.perf_counter()
        for epoch in range(self.start_epoch, self.cfg.epochs + 1):
            stats = self.train_epoch(epoch)
            val = score_split(self.model, self.reader, "validation", self.cfg.eval_batch_size, self.device,
                              self.governor)
            row = {"epoch": epoch, "train_loss": stats["train_loss"], "train_acc": stats["train_acc"],
                   "val_loss": val["loss"], "val_acc": val["accuracy"], "padding_waste": stats["padding_waste"]}
            self.history.append({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
            self.speed.append(round(stats["tokens_per_s"], 1))
            self.rows_speed.append(stats["rows_per_s"])
            self._log(f"epoch {epoch}: train loss {stats['train_loss']:.4f} acc {stats['train_acc']:.4f} | "
                       f"val loss {val['loss']:.4f} acc {val['accuracy']:.4f} | padding {stats['padding_waste']:.1%} | "
                       f"{stats['tokens_per_s']:,.0f} tok/s")
            if self.best is None or val["accuracy"] > self.best["val_acc"]:
                self.best = {"epoch": epoch, "val_acc": val["accuracy"], "val_loss": val["loss"]}
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            elif self.cfg.lr_decay < 1 and epoch < self.cfg.epochs:
                self.optimizer.scale_lr(self.cfg.lr_decay)  # in the optimizer state: resume points keep it
                self._log(f"no validation gain: learning rate now {self.optimizer.lr:.3g}")
            self._save_resume(epoch)
            if epoch == self.cfg.epochs:
                break  # the planned epochs ran: not an early stop
            if epoch - self.best["epoch"] >= self.cfg.patience > 0:
                self._log(f"early stop after epoch {epoch} of {self.cfg.epochs}: no validation gain for "
                          f"{self.cfg.patience} epoch(s)")
                break
            if self.cfg.max_steps and self.step >= self.cfg.max_steps:
                break
        self._write_outputs()
        return {"val_acc": self.best["val_acc"], "val_loss": round(self.best["val_loss"], 6),
                "best_epoch": self.best["epoch"], "tokens_per_s": round(float(np.mean(self.speed)), 1),
                "rows_per_s": round(float(np.mean(self.rows_speed)), 1) if self.rows_speed else None,
                "seconds": round(time.perf_counter() - t0, 2), "resumed": resumed, "device": str(self.device),
                "processes": self.world.size, **self.governor.summary()}

    def _note_batch_rows(self) -> None:
        """One line when a small train split lowered the row cap (``TrainConfig.rows_per_batch``)."""
        if self.batch_rows < self.cfg.batch_size:
            self._log(f"{len(self.train_data.lengths):,} training rows: batches of at most {self.batch_rows} rows "
                      f"instead of train.batch_size {self.cfg.batch_size}, {len(self.sampler):,} batches an epoch "
                      f"(train.min_batches {self.cfg.min_batches}; 0 keeps batch_size)")

    def _warn_lone_rows(self) -> None:
        """One line when texts are too long to share a batch under ``max_tokens``: correct, but each is a
        noisy optimizer step of one text, and many of them make an epoch slow."""
        if lone := self.sampler.lone_rows():
            lengths = self.train_data.lengths
            self._log(f"warning: {lone:,} of {len(lengths):,} training texts are longer than half of train.max_tokens "
                      f"({self.cfg.max_tokens // 2:,} tokens), so each trains as a batch of its own; raise "
                      f"train.max_tokens to at least {2 * int(lengths.max()):,}, or cut texts with bucket.max_len")

    def _log(self, message: str) -> None:
        if self.world.main:
            log(message)

    def close(self) -> None:
        self.world.close()

    def plot_rows(self) -> list[list]:
        """The DVC plots CSV rows (PLOT_FIELDS): the history plus each epoch's tokens/s."""
        return [[row[k] for k in HISTORY_FIELDS] + [speed] for row, speed in zip(self.history, self.speed)]

    def _write_outputs(self) -> None:
        if self.best is None:
            raise PipelineError("training ran no epoch; set train.epochs >= 1")
        checkpoint = make_checkpoint(self.best_state, self.config, self.labels, self.vocab_path, len(self.vocab),
                                     self.reader.manifest["params"], self.best["epoch"], self.best["val_acc"])
        stats = {
            "epochs": len(self.history), "best_epoch": self.best["epoch"], "steps": self.step,
            "batch_rows": self.batch_rows,
            "rnn_impl": self.model.rnn_impl, "parameters": sum(p.numel() for p in self.model.parameters()),
            "vectors": str(self.vectors) if self.vectors else None, "vectors_covered": self.vectors_covered,
            "vectors_settings": self.vectors_settings, "partial_epoch": self.partial_epoch,
        }
        if self.world.main:
            with sealed_dir(self.out_dir) as tmp:
                save_checkpoint(checkpoint, tmp / "model.pt")
                write_csv(tmp / "history.csv", list(HISTORY_FIELDS), ([row[k] for k in HISTORY_FIELDS] for row in self.history))
                write_json(tmp / "params.json", {"train": self.config})
                write_json(tmp / "stats.json", stats)
            if self.resume_path and self.resume_path.exists():
                self.resume_path.unlink()
        self.world.barrier()
