"""`textpipe check`: check every params block and fingerprint the dataset's files before any stage does work."""
import click

from pipeline.core.config import read_all
from pipeline.core.fileio import write_json
from pipeline.fingerprint import source_fingerprint
from pipeline.core.layout import CHECK_FILE, HASH_CACHE
from pipeline.core.params import load_params
from pipeline.preflight import check_inputs
from pipeline.sources import split_files

from .common import params_option


@click.command("check")
@params_option
def main(params_path: str) -> None:
    """Check types, ranges, a safe dataset.name, the device and the dataset's files; write artifacts/check.json.

    It runs first on every `dvc repro` (always_changed), so a bad value stops the
    pipeline before DVC touches any dataset folder. check.json holds the resolved
    data source and, for local files, each split file's size and sha256: the
    ingest stage depends on it, so editing a data file reruns ingest.
    """
    configs = read_all(load_params(params_path))
    source = configs["dataset"].resolve()
    train = configs["train"]
    if train.device not in ("auto", "cpu") or train.precision != "fp32":  # what this machine can run (imports torch)
        from pipeline.checkpoint import pick_device
        from pipeline.model import check_precision

        check_precision(pick_device(train.device), train.precision)
    check_inputs(configs)
    if source.source in ("demo", "files"):  # a hub dataset's splits are known once it is loaded
        source.check_splits(split_files(source), configs["evaluate"].split)
    files = source_fingerprint(source, HASH_CACHE)
    write_json(CHECK_FILE, {"source": source.record(), "files": files})
    click.echo(f"params ok: dataset {source.name} ({source.source}" + (f", {len(files)} files)" if files else ")"))
