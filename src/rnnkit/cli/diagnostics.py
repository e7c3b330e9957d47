"""``rnnkit gradflow``, ``rnnkit cliff``, ``rnnkit pathological``, ``rnnkit summary``:
vanishing and exploding gradients made visible (see :mod:`rnnkit.diagnostics`)."""

from __future__ import annotations

import click

from rnnkit.cli.options import POSITIVE, POSITIVE_FLOAT
from rnnkit.diagnostics.pathological import METHODS
from rnnkit.diagnostics.tasks import TASKS


@click.command("gradflow")
@click.option(
    "--cell",
    type=click.Choice(["rnn", "lstm", "gru", "all"]),
    default="all",
    show_default=True,
    help="Which cell(s) to measure.",
)
@click.option(
    "--length", "-T", type=POSITIVE, default=100, show_default=True, help="Sequence length T."
)
@click.option("--hidden", type=POSITIVE, default=32, show_default=True, help="Hidden units H.")
@click.option(
    "--batch", type=POSITIVE, default=16, show_default=True, help="Sequences averaged over."
)
@click.option(
    "--lambda1",
    "lambda1s",
    type=POSITIVE_FLOAT,
    multiple=True,
    help="Rescale the RNN's W_hh to this largest singular value (repeatable).",
)
@click.option(
    "--forget-bias",
    "forget_biases",
    type=float,
    multiple=True,
    help="Also an LSTM with this forget-gate bias (repeatable).",
)
@click.option(
    "--nonlinearity",
    type=click.Choice(["tanh", "sigmoid", "relu"]),
    default="tanh",
    show_default=True,
    help="The RNN's activation (gamma = 1, 1/4, 1).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write.")
def gradflow(cell: str, length: int, hidden: int, batch: int, lambda1s: tuple[float, ...],
             forget_biases: tuple[float, ...], nonlinearity: str, seed: int,
             out: str) -> None:  # fmt: skip
    """Plot ||dE_T/dh_k|| against T - k for RNN, LSTM and GRU.

    With the Jacobian-product norms, the bound (gamma lambda_1)^(T-k) of Pascanu, Mikolov &
    Bengio 2013 (sec. 2.1) and the LSTM/GRU gate products."""
    from rnnkit.diagnostics.figures import gradflow_figure

    cells = ["rnn", "lstm", "gru"] if cell == "all" else [cell]
    flows = gradflow_figure(cells, length, hidden, out, batch=batch, lambda1s=lambda1s,
                            forget_biases=forget_biases, nonlinearity=nonlinearity,
                            seed=seed)  # fmt: skip
    click.echo(f"{'layer':<26} {'lambda_1':>9} {'gamma*l1':>9} {'||dE/dh_T-10||':>15} "
               f"{'||dE/dh_0||':>12}")  # fmt: skip
    for f in flows:
        gm = f.typical()
        mid = gm[min(10, length)]
        eta = "-" if f.eta is None else f"{f.eta:.3f}"
        click.echo(f"{f.label:<26} {f.lambda1:>9.3f} {eta:>9} {mid:>15.3e} {gm[-1]:>12.3e}")
    click.echo(f"wrote {out}")


@click.command("cliff")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write.")
@click.option(
    "--resolution",
    type=click.IntRange(min=10),
    default=200,
    show_default=True,
    help="Grid points per axis of the loss surface.",
)
def cliff(out: str, resolution: int) -> None:
    """Plot the loss-surface cliff of a one-unit RNN (Pascanu, Mikolov & Bengio 2013, Fig 6)."""
    from rnnkit.diagnostics.figures import cliff_figure

    info = cliff_figure(out, resolution)
    click.echo(
        f"cliff on the line w = 8 at b* = {info['edge']:.10f}; gradient norm "
        f"<= {info['grad_norm_far']:.2e} for |b - b*| >= 0.01, up to "
        f"{info['grad_norm_near']:.2e} next to it"
    )
    w, b, e = info["plain_end"]
    click.echo(
        f"gradient descent from (w, b) = (4.5, -2.8): ends at w={w:.2f}, b={b:.2f}, "
        f"E={e:.4f} (largest step {info['plain_largest_step']:.2f})"
    )
    w, b, e = info["clipped_end"]
    click.echo(f"with clipping: ends at w={w:.2f}, b={b:.2f}, E={e:.4f}")
    click.echo(f"wrote {out}")  # fmt: skip


@click.command("pathological")
@click.argument("task", type=click.Choice(sorted(TASKS)), metavar="TASK")
@click.option(
    "--length",
    "-T",
    "lengths",
    type=POSITIVE,
    multiple=True,
    required=True,
    help="Sequence length T (repeatable).",
)
@click.option(
    "--method",
    "methods",
    type=click.Choice(METHODS),
    multiple=True,
    help="sgd, clip, clip-reg or lstm (repeatable; default all four).",
)
@click.option("--seeds", type=POSITIVE, default=3, show_default=True, help="Runs per cell.")
@click.option(
    "--steps",
    type=POSITIVE,
    default=5000,
    show_default=True,
    help="Largest number of updates per run.",
)
@click.option("--hidden", type=POSITIVE, default=50, show_default=True)
@click.option("--batch", type=POSITIVE, default=20, show_default=True)
@click.option(
    "--lr",
    type=POSITIVE_FLOAT,
    default=0.01,
    show_default=True,
    help="SGD learning rate of the RNN methods.",
)
@click.option(
    "--lstm-lr",
    type=POSITIVE_FLOAT,
    default=0.1,
    show_default=True,
    help="SGD learning rate of the LSTM.",
)
@click.option(
    "--clip",
    type=POSITIVE_FLOAT,
    default=1.0,
    show_default=True,
    help="Clipping threshold on the global gradient norm.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Weight of the regularizer Omega (clip-reg).",
)
@click.option(
    "--forget-bias",
    type=float,
    default=1.0,
    show_default=True,
    help="Forget-gate bias of the LSTM.",
)
@click.option("--eval-every", type=POSITIVE, default=100, show_default=True)
@click.option(
    "--test-size",
    type=POSITIVE,
    default=10000,
    show_default=True,
    help="Fresh test sequences for the < 1% error criterion.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for results.jsonl (resumable), histories, table.md and plots.",
)
@click.option("--progress/--no-progress", default=True, help="Progress bars on stderr.")
def pathological(task: str, lengths: tuple[int, ...], methods: tuple[str, ...], seeds: int,
                 steps: int, hidden: int, batch: int, lr: float, lstm_lr: float, clip: float,
                 alpha: float, forget_bias: float, eval_every: int, test_size: int,
                 out: str | None, progress: bool) -> None:  # fmt: skip
    """Success rates of SGD, clipping, clipping + Omega and an LSTM on a pathological task.

    The experiment of Pascanu, Mikolov & Bengio 2013 (sec. 4.1); prints the markdown table.

    TASK: temporal_order, temporal_order_3bit, adding, multiplication, permutation,
    memorization or memorization_5bit.
    """
    from rnnkit.diagnostics.figures import pathological_experiment

    table = pathological_experiment(
        task, lengths, methods or METHODS, seeds, out,
        echo=lambda s: click.echo(s, err=True), progress=progress,
        steps=steps, hidden=hidden, batch=batch, lr=lr, lstm_lr=lstm_lr, clip=clip,
        alpha=alpha, forget_bias=forget_bias, eval_every=eval_every, test_size=test_size,
    )  # fmt: skip
    click.echo(table)


@click.command("summary")
@click.argument("ckpt", type=click.Path())
def summary(ckpt: str) -> None:
    """Parameter counts per tensor and in total of a checkpoint (or a run folder)."""
    from rnnkit.diagnostics.summary import format_summary, summarize_checkpoint

    click.echo(format_summary(summarize_checkpoint(ckpt)))


commands: list[click.Command] = [gradflow, cliff, pathological, summary]
