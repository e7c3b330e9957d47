"""``rnnkit export``: a trained model as a file that other runtimes run (ONNX)."""

from __future__ import annotations

import click

from rnnkit.deploy.onnx import export_run


@click.command("export")
@click.argument("run", type=click.Path(file_okay=False))
@click.option(
    "--onnx",
    "onnx_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Write the model as this ONNX file (opset 17; run it with onnxruntime).",
)
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
def command(run: str, onnx_path: str, force: bool) -> None:
    """Export the model of RUN (a run folder of lm, classify, tag or mt) to ONNX.

    The graph uses ONNX's own RNN/LSTM/GRU operators with dynamic batch and length; its
    inputs and outputs are printed. A translation model gives two files beside the name
    given, NAME.encoder.onnx and NAME.decoder.onnx (one decoder step). Needs the onnx
    package (pip install 'rnnkit[onnx]').
    """
    for done in export_run(run, onnx_path, force=force):
        click.echo(f"wrote {done.path}: {done.kind} {done.part}, {done.bytes:,} bytes")
        click.echo("  inputs:  " + "; ".join(done.inputs))
        click.echo("  outputs: " + "; ".join(done.outputs))
