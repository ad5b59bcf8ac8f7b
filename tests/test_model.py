import itertools

import pytest
import torch

from pipeline.core.errors import PipelineError
from pipeline.model import TextClassifier, check_precision, reverse_within_length, run_fused, run_packed, step_autocast

from .helpers import needs_native_bf16


def test_reverse_within_length():
    x = torch.arange(8.).view(2, 4, 1)
    out = reverse_within_length(x, torch.tensor([3, 4]))
    assert out.squeeze(2).tolist() == [[2, 1, 0, 3], [7, 6, 5, 4]]


@pytest.mark.parametrize("rnn_type,num_layers,bidirectional",
                         list(itertools.product(["lstm", "gru", "rnn"], [1, 2, 3], [False, True])))
def test_fused_path_equals_packed_outputs_and_gradients(rnn_type, num_layers, bidirectional):
    torch.manual_seed(num_layers * 10 + bidirectional)
    model = TextClassifier(50, 3, embed_dim=8, hidden_size=6, num_layers=num_layers, bidirectional=bidirectional,
                           rnn_type=rnn_type, dropout=0.0).double()
    for trial in range(3):
        lengths = torch.randint(1, 12, (7,))
        ids = torch.randint(2, 50, (7, int(lengths.max())))
        ids[torch.arange(ids.size(1)).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
        x = model.embedding(ids)
        results = {}
        for name, run in (("packed", run_packed), ("fused", run_fused)):
            model.zero_grad()
            out, final = run(model.rnn, x, lengths)
            mask = (torch.arange(ids.size(1)).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)
            loss = (final.sin().sum() + (out * mask).cos().sum())
            loss.backward(retain_graph=True)
            grads = [p.grad.clone() for p in model.rnn.parameters()]
            results[name] = (out * mask, final, grads)
        (po, pf, pg), (fo, ff, fg) = results["packed"], results["fused"]
        torch.testing.assert_close(fo, po, atol=1e-5, rtol=0)
        torch.testing.assert_close(ff, pf, atol=1e-5, rtol=0)
        for a, b in zip(fg, pg):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
def test_classifier_logits_equal_across_paths_and_ignore_padding(pooling):
    torch.manual_seed(0)
    model = TextClassifier(30, 4, embed_dim=8, hidden_size=5, num_layers=2, pooling=pooling).eval()
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    lengths = torch.tensor([4, 2])
    fused = model(ids, lengths)
    model.rnn_impl = "packed"
    packed = model(ids, lengths)
    torch.testing.assert_close(fused, packed, atol=1e-5, rtol=0)
    assert fused.shape == (2, 4)
    # More padding changes nothing: the result is each sequence's own
    longer = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(longer, lengths), packed, atol=1e-5, rtol=0)


def test_reversal_backward_is_the_same_reversal():
    x = torch.randn(3, 5, 2, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([5, 2, 1])
    assert torch.autograd.gradcheck(lambda t: reverse_within_length(t, lengths), (x,))
    torch.testing.assert_close(reverse_within_length(reverse_within_length(x, lengths), lengths), x)


@pytest.mark.parametrize("pooling,num_layers", list(itertools.product(["last", "max", "mean"], [1, 2])))
def test_classifier_gradients_equal_across_paths(pooling, num_layers):
    # the model runs the fast path with the last layer's backward outputs left reversed (ordered=False);
    # pooled vectors, logits and every parameter gradient must still match packing
    torch.manual_seed(num_layers)
    model = TextClassifier(40, 3, embed_dim=6, hidden_size=5, num_layers=num_layers, pooling=pooling).double().train()
    lengths = torch.tensor([9, 7, 7, 3, 1])
    ids = torch.randint(2, 40, (5, 9))
    ids[torch.arange(9).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    labels = torch.tensor([0, 1, 2, 1, 0])
    grads = {}
    for impl in ("packed", "fused"):
        model.rnn_impl = impl
        model.zero_grad()
        logits = model(ids, lengths)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        grads[impl] = (logits.detach(), [p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(grads["fused"][0], grads["packed"][0], atol=1e-10, rtol=0)
    for a, b in zip(grads["fused"][1], grads["packed"][1]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def _twin_classifiers(sparse: bool, seed: int = 3) -> TextClassifier:
    torch.manual_seed(seed)
    model = TextClassifier(50, 3, embed_dim=8, hidden_size=6, rnn_impl="fused")
    model.embedding.sparse = sparse
    return model


def _random_batches(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``n`` batches of (ids, lengths, labels) for :func:`_twin_classifiers`: 4 rows of up to 7 ids."""
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randint(1, 50, (4, 7), generator=gen), torch.tensor([7, 6, 3, 1]), torch.randint(0, 3, (4,), generator=gen))
            for _ in range(n)]


def _right_padded(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return ids * (torch.arange(ids.shape[1]) < lengths.unsqueeze(1))


def test_sparse_embedding_gradients_give_the_dense_weights_under_sgd_with_clipping():
    """Where the maths is the same (SGD), sparse and dense embedding gradients train the same weights,
    clipping included (repeated ids in a batch add up in both)."""
    from pipeline.optim import clip_grad_norm

    batches = _random_batches(6, seed=0)
    batches[0][0][:, :3] = 5  # one id many times in one batch
    weights, norms = {}, {}
    for sparse in (False, True):
        model = _twin_classifiers(sparse)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        norms[sparse] = []
        for ids, lengths, labels in batches:
            ids = _right_padded(ids, lengths)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(ids, lengths), labels).backward()
            assert model.embedding.weight.grad.is_sparse == sparse
            norms[sparse].append(float(clip_grad_norm(list(model.parameters()), 0.05)))
            opt.step()
        weights[sparse] = {k: v.clone() for k, v in model.state_dict().items()}
    assert norms[True] == pytest.approx(norms[False], rel=1e-5) and min(norms[False]) > 0.05  # clipping was active
    for name, dense in weights[False].items():
        torch.testing.assert_close(weights[True][name], dense, rtol=1e-5, atol=1e-6)
    assert not torch.equal(weights[False]["embedding.weight"], _twin_classifiers(False).embedding.weight)


def test_lazy_adam_updates_only_the_rows_a_batch_used():
    from pipeline.optim import ClassifierOptimizer

    model = _twin_classifiers(True)
    before = model.embedding.weight.detach().clone()
    opt = ClassifierOptimizer(model, "adam", lr=0.01)
    assert sorted(opt.parts) == ["dense", "sparse"]
    ids = torch.tensor([[4, 9, 9], [2, 0, 0]])
    for _ in range(3):
        opt.zero_grad()
        model(ids, torch.tensor([3, 1])).sum().backward()
        opt.step()
    changed = (model.embedding.weight != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [2, 4, 9]  # never <pad> (0), never an unused row
    state = opt.state_dict()
    again = ClassifierOptimizer(model, "adam", lr=0.01)
    again.load_state_dict(state)
    assert again.parts["sparse"].state_dict()["state"][0]["step"] == 3
    dense = ClassifierOptimizer(_twin_classifiers(False), "adam", lr=0.01)
    with pytest.raises(ValueError, match="optimizer state has"):
        dense.load_state_dict(state)


@pytest.mark.parametrize("optimizer,weight_decay,sparse", [("adam", 0.0, True), ("adam", 0.01, False), ("adamw", 0.01, False)])
def test_adam_and_lazy_adam_make_torch_optims_updates_bit_for_bit(optimizer, weight_decay, sparse):
    """textpipe's Adams (no torch.optim.Optimizer, so no torch._dynamo import) against torch.optim's fused
    Adam(W) and SparseAdam: equal weights after every step, a learning-rate change included; and a
    torch.optim state dict (a resume point of textpipe before them) loads and goes on equal."""
    import copy

    from pipeline.optim import ClassifierOptimizer

    batches = _random_batches(7, seed=1)
    mine, theirs = _twin_classifiers(sparse), _twin_classifiers(sparse)
    ours = ClassifierOptimizer(mine, optimizer, lr=0.01, weight_decay=weight_decay)
    assert not any(isinstance(part, torch.optim.Optimizer) for part in ours.parts.values())
    embedding = theirs.embedding.weight
    dense = [p for p in theirs.parameters() if not (sparse and p is embedding)]
    torch_cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    torch_opts = {"dense": torch_cls(dense, lr=0.01, weight_decay=weight_decay, fused=True)}
    if sparse:
        torch_opts["sparse"] = torch.optim.SparseAdam([embedding], lr=0.01)

    def train_step(model, zero_grad, step, ids, lengths, labels):
        ids = _right_padded(ids, lengths)
        zero_grad()
        torch.nn.functional.cross_entropy(model(ids, lengths), labels).backward()
        step()

    for i, batch in enumerate(batches):
        if i == 3:  # the schedule changes the learning rate between steps
            ours.set_schedule(0.5)
            for group in (g for o in torch_opts.values() for g in o.param_groups):
                group["lr"] = 0.005
        if i == 6:  # a resume point torch.optim wrote, loaded as torch.load gives it back (fresh tensors)
            ours = ClassifierOptimizer(mine, optimizer, lr=0.01, weight_decay=weight_decay)
            ours.load_state_dict(copy.deepcopy({name: o.state_dict() for name, o in torch_opts.items()}))
            assert ours.parts["dense"].param_groups[0]["lr"] == 0.005
        train_step(mine, ours.zero_grad, ours.step, *batch)
        train_step(theirs, lambda: [o.zero_grad() for o in torch_opts.values()],
                   lambda: [o.step() for o in torch_opts.values()], *batch)
        for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(a, b), (i, name)
    assert not torch.equal(mine.embedding.weight, _twin_classifiers(sparse).embedding.weight)
    steps = [s["step"] for part in ours.state_dict().values() for s in part["state"].values()]
    assert [float(s) for s in steps] == [7.0] * len(steps)


def test_word_dropout_zeroes_whole_tokens_in_training_only():
    torch.manual_seed(0)
    model = TextClassifier(50, 2, embed_dim=8, hidden_size=4, dropout=0.0)
    seen = []  # the token vectors entering the (here inactive) element dropout, i.e. after word dropout
    model.dropout.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone())
                                            if args[0].dim() == 3 else None)
    ids = torch.randint(2, 50, (64, 30))
    lengths = torch.full((64,), 30)
    model.word_dropout = 0.25
    model.train()
    model(ids, lengths)
    model.eval()
    model(ids, lengths)
    train_in, eval_in = seen
    expected = model.embedding(ids).detach()
    torch.testing.assert_close(eval_in, expected, rtol=0, atol=0)  # evaluation: every token kept
    zeroed = (train_in == 0).all(dim=2)
    # a token is either kept whole (unscaled) or dropped whole; about a quarter dropped
    torch.testing.assert_close(train_in[~zeroed], expected[~zeroed], rtol=0, atol=0)
    assert 0.2 < zeroed.float().mean().item() < 0.3


@needs_native_bf16()
@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_bf16_steps_run_the_recurrent_kernel_in_bfloat16_with_fp32_weights_and_gradients(pooling):
    torch.manual_seed(3)
    model = TextClassifier(60, 3, embed_dim=16, hidden_size=12, pooling=pooling, dropout=0.0).train()
    ids = torch.randint(2, 60, (6, 40))
    lengths = torch.tensor([40, 33, 20, 9, 2, 1])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    cpu = torch.device("cpu")

    def step(precision):
        model.zero_grad()
        with step_autocast(cpu, precision):
            logits = model(ids, lengths)
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        return logits, {n: p.grad.clone() for n, p in model.named_parameters()}

    ref, ref_grads = step("fp32")
    low, low_grads = step("bf16")
    assert ref.dtype == torch.float32 and low.dtype == torch.bfloat16
    assert not torch.equal(low.float(), ref)  # bf16 results: near fp32's, not fp32's
    torch.testing.assert_close(low.float(), ref, atol=0.05, rtol=0)
    for name, grad in low_grads.items():
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all(), name
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), ref_grads[name].flatten(), dim=0)
        assert cosine > 0.98, (name, cosine)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = model.embedding(ids)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):  # the fused kernel itself
        with step_autocast(cpu, precision):
            assert run_fused(model.rnn, x, lengths)[0].dtype == dtype
    with step_autocast(cpu, "bf16"):  # a mean is summed in fp32; a max of bfloat16 values is exact in bfloat16
        assert model.encode(ids, lengths).dtype == (torch.float32 if pooling == "mean" else torch.bfloat16)


def test_check_precision_refuses_devices_and_cpus_without_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    check_precision(torch.device("mps"), "fp32")
    with pytest.raises(PipelineError, match=r"^train.precision: bf16 runs on cpu or cuda, not mps; set train.precision: fp32"):
        check_precision(torch.device("mps"), "bf16")
    monkeypatch.setattr("pipeline.model.native_bf16_cpu", lambda: True)
    check_precision(cpu, "bf16")
    monkeypatch.setattr("pipeline.model.native_bf16_cpu", lambda: False)
    check_precision(cpu, "fp32")
    with pytest.raises(PipelineError, match=r"^train.precision: bf16 needs a CPU with native bfloat16 \(AVX512-BF16 or AMX\), "
                                            r"and this one has none; set train.precision: fp32$"):
        check_precision(cpu, "bf16")
