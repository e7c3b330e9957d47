"""The `zaremba-small` PTB language model in PyTorch: the peer for rnnkit's own run.

Same data pipeline as rnnkit (its Vocab and TBPTTStream, so both models see identical
windows), same model (embedding 200 -> 2-layer LSTM 200 -> linear 10000, all weights
U(-0.1, 0.1)), same training (SGD lr 1, halved at the end of every epoch from epoch 5 on,
global-norm clip 5 on the gradient of the loss summed over the window's steps and averaged
over the batch, BPTT 20, batch 20, 13 epochs, state carried between windows and reset
each epoch) and the same evaluation (batch 1, state carried, every token scored).

    python benchmarks/torch_lm_ptb.py --data ../shared/data/ptb --threads 1 [--epochs 13]
    python benchmarks/torch_lm_ptb.py --max-steps 300 [--rnnkit]   # throughput only

With ``--rnnkit`` the same windows are trained by rnnkit's LanguageModel, for the throughput
comparison (the full rnnkit run is ``rnnkit lm train ... --preset zaremba-small``).

Prints one line per epoch and a final JSON line with the wall time and perplexities.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import machine  # benchmarks/machine.py: the header (CPU, ISA, each library's kernel)
import numpy as np
import torch

from rnnkit.io import read_text
from rnnkit.text.vocab import Vocab
from rnnkit.train.data import TBPTTStream


class Model(torch.nn.Module):
    def __init__(self, V: int, H: int = 200, L: int = 2, init: float = 0.1) -> None:
        super().__init__()
        self.encoder = torch.nn.Embedding(V, H)
        self.rnn = torch.nn.LSTM(H, H, L, batch_first=True)
        self.decoder = torch.nn.Linear(H, V)
        for p in self.parameters():
            torch.nn.init.uniform_(p, -init, init)
        torch.nn.init.zeros_(self.decoder.bias)  # as rnnkit's LanguageModel with init_range

    def forward(self, x, state=None):
        out, state = self.rnn(self.encoder(x), state)
        return self.decoder(out), state


def evaluate(model: Model, ids: np.ndarray, bptt: int) -> float:
    model.eval()
    data = torch.from_numpy(ids[None, :])
    n = data.shape[1]
    total, count, state = 0.0, 0, None
    with torch.inference_mode():
        for i in range(0, n - 1, bptt):
            x = data[:, i : min(i + bptt, n - 1)]
            y = data[:, i + 1 : i + 1 + x.shape[1]]
            logits, state = model(x, state)
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
            ).item()
            count += y.numel()
    model.train()
    return total / count


def rnnkit_throughput(train_ids: np.ndarray, vocab_size: int, max_steps: int) -> dict:
    """Training tokens/s of rnnkit's zaremba-small over the first ``max_steps`` windows."""
    from rnnkit.models.lm import LanguageModel
    from rnnkit.recipes.lm import PRESETS, LMTrainConfig
    from rnnkit.train.clip import clip_grad_norm
    from rnnkit.train.loop import make_optimizer

    cfg = LMTrainConfig(**PRESETS["zaremba-small"])
    model = LanguageModel(cfg.model_config(vocab_size), seed=0)
    opt = make_optimizer(cfg.optimizer, model.params, model.grads, cfg.lr, cfg.momentum)
    stream = TBPTTStream(train_ids, batch_size=20, bptt=20)
    t0, steps, tokens, state = time.perf_counter(), 0, 0, None
    for x, y in stream:
        _, state, cache = model.forward(x, y, state)
        model.zero_grad()
        model.backward(cache, dloss=float(x.shape[1]))
        clip_grad_norm(model.grads, 5.0)
        opt.step()
        steps, tokens = steps + 1, tokens + y.size
        if steps >= max_steps:
            break
    return {
        "impl": "rnnkit",
        "steps": steps,
        "train_tokens_per_s": tokens / (time.perf_counter() - t0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/ptb"))
    ap.add_argument("--epochs", type=int, default=13)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=0, help="stop early (timing runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rnnkit", action="store_true", help="time rnnkit's model instead")
    args = ap.parse_args()
    print(machine.header(), flush=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    d = Path(args.data)
    train_text = read_text(d / "ptb.train.txt")
    vocab = Vocab.build(train_text, level="word")
    if args.rnnkit:
        steps = args.max_steps or 300
        print(json.dumps(rnnkit_throughput(vocab.encode(train_text), len(vocab), steps)))
        return
    ids = {s: vocab.encode(read_text(d / f"ptb.{s}.txt")) for s in ("valid", "test")}
    stream = TBPTTStream(vocab.encode(train_text), batch_size=20, bptt=20)
    model = Model(len(vocab))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(range(5, 100)), gamma=0.5)
    t_start = time.perf_counter()
    steps, train_seconds, tokens = 0, 0.0, 0
    for epoch in range(1, args.epochs + 1):
        t0, state, losses = time.perf_counter(), None, []
        for x, y in stream:
            if stream.position == 1:
                state = None
            logits, state = model(torch.from_numpy(np.ascontiguousarray(x)), state)
            state = tuple(s.detach() for s in state)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                torch.from_numpy(np.ascontiguousarray(y)).reshape(-1),
            )
            opt.zero_grad()
            # the loss summed over the window's steps, averaged over the batch (as rnnkit's
            # --loss sum-time and Zaremba's code): lr 1 and clip 5 refer to this scale
            (loss * x.shape[1]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
            steps += 1
            tokens += y.size
            if args.max_steps and steps >= args.max_steps:
                break
        train_seconds += time.perf_counter() - t0
        if args.max_steps and steps >= args.max_steps:
            break
        sched.step()
        v = evaluate(model, ids["valid"], 20)
        print(f"epoch {epoch}: train loss {np.mean(losses):.4f}, valid ppl {math.exp(v):.2f}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    result = {"steps": steps, "train_tokens_per_s": tokens / train_seconds,
              "wall_seconds": time.perf_counter() - t_start, "threads": args.threads}  # fmt: skip
    if not args.max_steps:
        result["valid_ppl"] = math.exp(evaluate(model, ids["valid"], 20))
        result["test_ppl"] = math.exp(evaluate(model, ids["test"], 20))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
