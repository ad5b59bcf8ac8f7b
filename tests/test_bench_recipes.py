"""bench/train_throughput.py's recipe choice: checked before any work, never a crash mid-run."""
import importlib.util

import pytest

from pipeline.model import native_bf16_cpu
from tests.helpers import REPO


def load_bench():
    spec = importlib.util.spec_from_file_location("train_throughput", REPO / "bench" / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def test_default_recipes_are_those_this_cpu_runs():
    expected = ["textpipe", "textpipe-dense", "seed", "kernel"] + (["textpipe-bf16"] if native_bf16_cpu() else [])
    assert bench.chosen_recipes(None) == expected
    assert bench.chosen_recipes("seed,textpipe") == ["seed", "textpipe"]


def test_an_unknown_recipe_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.chosen_recipes("textpipe,fused")
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "Error: unknown recipe fused; choose from textpipe,textpipe-dense,seed,kernel,textpipe-bf16\n"


@pytest.mark.skipif(native_bf16_cpu(), reason="this CPU runs bfloat16, so the bf16 recipe is allowed here")
def test_bf16_recipe_on_a_cpu_without_bfloat16_is_refused_before_work(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.chosen_recipes("textpipe-bf16")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: textpipe-bf16: train.precision: bf16 needs a CPU with native bfloat16") and err.count("\n") == 1


def test_kernel_ceiling_runs_textpipes_fused_kernel_on_its_batches(demo):
    """The ceiling measures the kernel a textpipe step runs, over the same batches, counting the same tokens."""
    from torch.profiler import profile

    from pipeline.sampler import collate
    from pipeline.shards import ShardReader

    reader = ShardReader(demo / "shards", vocab_path=demo / "vocab" / "vocab.tsv")
    data = reader.split("train")
    lstm, opt, kernel_batches = bench.one_setup("kernel", reader, data, 0, 32, 2000)
    model, model_opt, textpipe_batches = bench.one_setup("textpipe", reader, data, 0, 32, 2000)
    assert opt is None and len(kernel_batches) > 3
    assert [list(b) for b in kernel_batches] == [list(b) for b in textpipe_batches]
    for batch in kernel_batches[:3]:
        with profile() as kernel_run:
            kernel_tokens = bench.kernel_step(lstm, data, batch)
        with profile() as textpipe_run:
            textpipe_tokens = bench.train_step(model, model_opt, data, batch)
        assert kernel_tokens == textpipe_tokens == int(data.lengths[batch].sum())
        # the kernel's input is the padded shape textpipe's step gathers: [rows, longest row]
        assert tuple(collate(data, batch)[0].shape) == (len(batch), int(data.lengths[batch].max()))
        for run in (kernel_run, textpipe_run):
            names = {e.key for e in run.key_averages()}
            assert {"aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward"} <= names
        assert all(p.grad is not None for p in lstm.parameters())
