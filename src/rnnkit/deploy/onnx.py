r"""ONNX export: trained models as graphs of ONNX's own recurrent operators, for onnxruntime.

Each layer of a recurrent stack becomes one ONNX ``RNN``, ``LSTM`` or ``GRU`` node (the
operators hold one layer, in one or two directions), so that a runtime's fused recurrent
kernels run it. What differs between rnnkit's parameters (PyTorch's names and layout) and
the operators' inputs:

- **gate order**: rnnkit's LSTM rows are gates i, f, g, o, the operator's i, o, f, c; the
  GRU's r, z, n against z, r, h. The H-row blocks of every weight and bias are permuted.
- **the GRU's two forms**: rnnkit's default ``reset_after=True`` (PyTorch's and cuDNN's,
  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))) is ``linear_before_reset=1``; the textbook
  form n = tanh(W_in x + b_in + W_hn (r * h) + b_hn) is ``linear_before_reset=0``.
- **stacking of the weights**: per direction, W (dirs, G*H, D), R (dirs, G*H, H),
  B (dirs, 2*G*H) = [b_ih; b_hh]; LSTM peepholes P (dirs, 3H) in the order i, o, f
  (rnnkit's ``weight_ci``, ``weight_co``, ``weight_cf``); the RNN's activation by name.
- **layout**: the operators run time-major, X (T, B, D) -> Y (T, dirs, B, H). The graph
  transposes the batch-first input once, keeps the stack time-major (each layer's Y becomes
  (T, B, dirs*H), the next layer's X), and transposes the output back once.
- **padding**: ``lengths`` become the operators' ``sequence_lens`` (int32): each sequence's
  forward pass stops and its reverse pass starts at its last real step, rnnkit's
  packed-sequence semantics; the stack's output is then multiplied by the mask, so that
  padded steps output zeros as in rnnkit whatever a runtime writes there.

Exported: the language model (:func:`lm_graph`), the sentence classifier
(:func:`classifier_graph`), the tagger (:func:`tagger_graph`), the translation model as an
encoder and one decoder step (:func:`translator_graphs`), and a layer alone
(:func:`layer_graph`). Batch and time (and the tagger's number of distinct words and their
length) are dynamic axes of every graph. Only float32 models (onnxruntime's recurrent
kernels are float32). Building a graph needs the ``onnx`` package (an optional extra,
``pip install 'rnnkit[onnx]'``), imported when an export starts; running the file needs
only a runtime such as onnxruntime.

Example (a layer alone; models are exported from their run folders by :func:`export_run`):

>>> import numpy as np, onnx
>>> from rnnkit.engine.layers import GRU
>>> graph = layer_graph(GRU(4, 5, num_layers=2, bidirectional=True, seed=0), lengths=True)
>>> onnx.checker.check_model(graph, full_check=True)
>>> [n.op_type for n in graph.graph.node if n.op_type in ("GRU", "LSTM", "RNN")]
['GRU', 'GRU']
>>> [i.name for i in graph.graph.input], [o.name for o in graph.graph.output]
(['x', 'lengths'], ['y', 'h'])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnkit.engine.layers import Recurrent
from rnnkit.io import RnnkitError, atomic_write_bytes
from rnnkit.models.classify import SequenceClassifier
from rnnkit.models.lm import LanguageModel
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.tag import SequenceTagger
from rnnkit.recipes.lm import KIND as KIND_LM
from rnnkit.recipes.lm import load_lm
from rnnkit.recipes.mt import KIND as KIND_MT
from rnnkit.recipes.mt import load_translator
from rnnkit.recipes.task import KIND_CLASSIFIER, KIND_TAGGER, load_classifier, load_tagger
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.loop import run_checkpoint

if TYPE_CHECKING:
    import onnx

__all__ = [
    "EXPORTABLE",
    "OPSET",
    "Exported",
    "classifier_graph",
    "export_run",
    "layer_graph",
    "lm_graph",
    "onnx_weights",
    "output_paths",
    "require_onnx",
    "tagger_graph",
    "translator_graphs",
]

OPSET = 17  # ai.onnx opset: LSTM-14, GRU-14, RNN-14; ReduceMax still takes axes as attribute
IR_VERSION = 8  # the IR version of opset 17, so that older runtimes read the file too
# rows of the operator's gate blocks, as indices of rnnkit's (PyTorch's) blocks
GATE_ORDER = {"RNN": [0], "LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}  # i,o,f,c <- i,f,g,o; z,r,h
ACTIVATION = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}
MAX_BYTES = 2**31 - 1  # one protobuf message


def require_onnx() -> Any:
    """The ``onnx`` module, or one line saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise RnnkitError(
            "ONNX export needs the onnx package: pip install 'rnnkit[onnx]' (or pip install onnx)"
        ) from None
    return onnx


# --- a small graph builder -------------------------------------------------------------------


class _Graph:
    """Nodes, initializers, inputs and outputs of one ONNX graph, with fresh value names."""

    def __init__(self, dtype: np.dtype) -> None:
        self.onnx = require_onnx()
        self.dtype = np.dtype(dtype)
        if self.dtype != np.float32:
            # onnxruntime's CPU RNN, LSTM and GRU kernels are float32 only
            raise RnnkitError(
                f"ONNX export: the model is {self.dtype}; only float32 models are exported "
                "(onnxruntime's recurrent kernels are float32)"
            )
        self.elem = self.onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value: Any, name: str | None = None) -> str:
        """An initializer: a parameter under ``name``, or a constant under a fresh name."""
        arr = np.asarray(value)
        name = name or self.fresh("const")
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64))

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: Any) -> Any:
        """Add a node; returns its output name (or the list of ``outputs`` names)."""
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def input(self, name: str, shape: list[Any], elem: int | None = None) -> str:
        vi = self.onnx.helper.make_tensor_value_info(name, elem or self.elem, shape)
        self.inputs.append(vi)
        return name

    def output(self, value: str, name: str, shape: list[Any], elem: int | None = None) -> None:
        self.nodes.append(self.onnx.helper.make_node("Identity", [value], [name]))
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, elem or self.elem,
                                                                    shape))  # fmt: skip

    def model(self, name: str, doc: str) -> Any:
        h = self.onnx.helper
        graph = h.make_graph(self.nodes, name, self.inputs, self.outputs, self.inits)
        model = h.make_model(graph, producer_name="rnnkit", doc_string=doc,
                             opset_imports=[h.make_opsetid("", OPSET)])  # fmt: skip
        model.ir_version = IR_VERSION
        return model

    # --- pieces shared by the graphs ---------------------------------------------------------

    def batch_first(self, x_tm: str) -> str:
        """(T, B, F) <-> (B, T, F)."""
        return self.op("Transpose", x_tm, perm=[1, 0, 2])

    def mask(self, like: str, lengths: str) -> str:
        """(B, T) float mask, 1 at the first lengths[b] steps of row b; T is the second
        dimension of ``like`` (B, T, ...)."""
        T = self.op("Squeeze", self.op("Shape", like, start=1, end=2), self.ints(0))
        steps = self.op("Range", self.const(np.int64(0)), T, self.const(np.int64(1)))
        valid = self.op("Less", self.op("Unsqueeze", steps, self.ints(0)),
                        self.op("Unsqueeze", lengths, self.ints(1)))  # fmt: skip
        return self.op("Cast", valid, to=self.elem)

    def embed(self, weight: str, ids: str) -> str:
        return self.op("Gather", weight, ids, axis=0)

    def linear(self, x: str, weight: str, bias: str | None) -> str:
        """x W^T + b, W (O, D) as rnnkit (torch.nn.Linear) stores it."""
        y = self.op("MatMul", x, self.op("Transpose", weight, perm=[1, 0]))
        return self.op("Add", y, bias) if bias is not None else y


# --- the recurrent stack -----------------------------------------------------------------------


def onnx_weights(layer: Recurrent, index: int) -> dict[str, np.ndarray]:
    """The inputs W, R, B (and P) of the ONNX operator for layer ``index`` of ``layer``.

    W (dirs, G*H, D), R (dirs, G*H, H), B (dirs, 2*G*H) = [b_ih; b_hh] with the gate blocks
    in the operator's order (LSTM i, o, f, c; GRU z, r, h); for a peephole LSTM also
    P (dirs, 3H) = [p_i; p_o; p_f]. No B without biases.

    >>> from rnnkit.engine.layers import LSTM
    >>> lstm = LSTM(2, 1, seed=0)
    >>> lstm.params["weight_hh_l0"][:, 0] = [1.0, 2.0, 3.0, 4.0]   # rows i, f, g, o
    >>> onnx_weights(lstm, 0)["R"][0, :, 0].tolist()                 # rows i, o, f, c
    [1.0, 4.0, 2.0, 3.0]
    """
    H = layer.hidden_size
    order = GATE_ORDER[layer.mode]

    def gates(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[k * H : (k + 1) * H] for k in order])

    parts: dict[str, list[np.ndarray]] = {"W": [], "R": [], "B": [], "P": []}
    for d in range(layer.num_directions):
        p, _ = layer.direction_params(index, d)
        parts["W"].append(gates(p["weight_ih"]))
        parts["R"].append(gates(p["weight_hh"]))
        if layer.bias:
            parts["B"].append(np.concatenate([gates(p["bias_ih"]), gates(p["bias_hh"])]))
        if "weight_ci" in p:
            parts["P"].append(np.concatenate([p["weight_ci"], p["weight_co"], p["weight_cf"]]))
    return {k: np.ascontiguousarray(np.stack(v)) for k, v in parts.items() if v}


def _stack(
    g: _Graph, layer: Recurrent, x_tm: str, lengths: str | None, init: list[str] | None,
    prefix: str,
) -> tuple[str, list[str]]:  # fmt: skip
    """The layers of ``layer`` on x (T, B, D): y (T, B, dirs*H) and the final states
    [h] or [h, c], each (L*dirs, B, H). ``lengths`` (B,) int32 or None; ``init``: the
    initial states (L*dirs, B, H), or None for zeros."""
    dirs, H, L = layer.num_directions, layer.hidden_size, layer.num_layers
    attrs: dict[str, Any] = {"hidden_size": H}
    if dirs == 2:
        attrs["direction"] = "bidirectional"
    if layer.mode == "RNN":
        attrs["activations"] = [ACTIVATION[layer.nonlinearity]] * dirs  # type: ignore[attr-defined]
    if layer.mode == "GRU":
        attrs["linear_before_reset"] = int(layer.reset_after)  # type: ignore[attr-defined]
    finals: list[list[str]] = [[] for _ in range(layer.n_states)]
    for k in range(L):
        w = onnx_weights(layer, k)
        names = {n: g.const(a, f"{prefix}{n}_l{k}") for n, a in w.items()}
        states = [""] * 2
        if init is not None:  # this layer's directions: rows k*dirs .. (k+1)*dirs
            for i, s in enumerate(init):
                states[i] = g.op("Slice", s, g.ints(k * dirs), g.ints((k + 1) * dirs),
                                 g.ints(0))  # fmt: skip
        inputs = [x_tm, names["W"], names["R"], names.get("B", ""), lengths or ""]
        inputs += [states[0]]
        if layer.mode == "LSTM":
            inputs += [states[1], names.get("P", "")]
        while inputs[-1] == "":
            inputs.pop()
        outs = g.op(layer.mode, *inputs, outputs=1 + layer.n_states, **attrs)
        # Y (T, dirs, B, H) -> (T, B, dirs, H) -> (T, B, dirs*H): the next layer's input
        x_tm = g.op("Reshape", g.op("Transpose", outs[0], perm=[0, 2, 1, 3]), g.ints(0, 0, -1))
        for i in range(layer.n_states):
            finals[i].append(outs[1 + i])
    states_out = [f[0] if L == 1 else g.op("Concat", *f, axis=0) for f in finals]
    return x_tm, states_out


def _masked(g: _Graph, y: str, mask: str | None) -> str:
    """y (B, T, F) times the (B, T) mask: zeros past each sequence's end."""
    return y if mask is None else g.op("Mul", y, g.op("Unsqueeze", mask, g.ints(2)))


def layer_graph(layer: Recurrent, lengths: bool = False, state: bool = False) -> onnx.ModelProto:
    """A recurrent layer alone, as rnnkit runs it for inference: ``y, h = layer(x)``.

    Inputs: ``x`` (batch, time, D) float32; with ``lengths``, ``lengths`` (batch,) int64;
    with ``state``, ``h0`` (and for the LSTM ``c0``) (L*dirs, batch, H). Outputs ``y``
    (batch, time, dirs*H), ``h`` (and ``c``) (L*dirs, batch, H): rnnkit's ``out, state``.
    """
    g = _Graph(layer.dtype)
    dirs, H, L = layer.num_directions, layer.hidden_size, layer.num_layers
    x = g.input("x", ["batch", "time", layer.input_size])
    lens, mask = None, None
    if lengths:
        lens64 = g.input("lengths", ["batch"], g.onnx.TensorProto.INT64)
        lens = g.op("Cast", lens64, to=g.onnx.TensorProto.INT32)
        mask = g.mask(x, lens64)
    names = ["h0", "c0"][: layer.n_states]
    init = [g.input(n, [L * dirs, "batch", H]) for n in names] if state else None
    y_tm, finals = _stack(g, layer, g.op("Transpose", x, perm=[1, 0, 2]), lens, init, "")
    g.output(_masked(g, g.batch_first(y_tm), mask), "y", ["batch", "time", dirs * H])
    for f, n in zip(finals, ["h", "c"], strict=False):
        g.output(f, n, [L * dirs, "batch", H])
    return g.model(f"rnnkit {layer!r}", layer_graph.__doc__ or "")


# --- the task models ---------------------------------------------------------------------------


def lm_graph(model: LanguageModel) -> onnx.ModelProto:
    """A language model: ids (batch, time) int64 -> next-token logits (batch, time, V).

    Inputs: ``ids``; optionally ``h0`` (and for the LSTM ``c0``) (L, batch, H), the state
    to start from (not fed: zeros; fed: e.g. the ``h``/``c`` of the previous call, to
    continue a text or sample one token at a time). Outputs: ``logits`` and the final
    state ``h`` (and ``c``) (L, batch, H).
    """
    c = model.config
    rnn = model.rnn
    g = _Graph(rnn.dtype)
    ids = g.input("ids", ["batch", "time"], g.onnx.TensorProto.INT64)
    emb = g.embed(g.const(model.params["encoder.weight"], "encoder.weight"), ids)  # (B, T, E)
    # optional state: an input that has an initializer of zeros (L, 1, H) is optional in
    # ONNX (IR >= 4); Expand broadcasts it to the batch and leaves a fed (L, B, H) as it is
    shape = g.op("Concat", g.ints(c.layers), g.op("Shape", ids, start=0, end=1), g.ints(c.hidden),
                 axis=0)  # fmt: skip
    init = []
    for n in ["h0", "c0"][: rnn.n_states]:
        g.input(n, [c.layers, "batch", c.hidden])
        g.const(np.zeros((c.layers, 1, c.hidden), rnn.dtype), n)
        init.append(g.op("Expand", n, shape))
    y_tm, finals = _stack(g, rnn, g.op("Transpose", emb, perm=[1, 0, 2]), None, init, "rnn.")
    dec = "encoder.weight" if c.tie_weights else g.const(model.params["decoder.weight"],
                                                         "decoder.weight")  # fmt: skip
    bias = g.const(model.params["decoder.bias"], "decoder.bias")
    g.output(g.linear(g.batch_first(y_tm), dec, bias), "logits",
             ["batch", "time", c.vocab_size])  # fmt: skip
    for f, n in zip(finals, ["h", "c"], strict=False):
        g.output(f, n, [c.layers, "batch", c.hidden])
    return g.model("rnnkit language model", lm_graph.__doc__ or "")


def _encode_words(g: _Graph, weight: np.ndarray, name: str) -> tuple[str, str, str, str]:
    """The inputs ids (batch, time), lengths (batch,): embeddings (T, B, E) time-major,
    the int32 lengths and the (B, T) mask; also ids' name."""
    ids = g.input("ids", ["batch", "time"], g.onnx.TensorProto.INT64)
    lengths = g.input("lengths", ["batch"], g.onnx.TensorProto.INT64)
    emb = g.op("Transpose", g.embed(g.const(weight, name), ids), perm=[1, 0, 2])
    return emb, g.op("Cast", lengths, to=g.onnx.TensorProto.INT32), g.mask(ids, lengths), ids


def classifier_graph(model: SequenceClassifier) -> onnx.ModelProto:
    """A sentence classifier: ids (batch, time) int64, lengths (batch,) int64 (in [1, time],
    padding anywhere past them) -> ``logits`` (batch, C) and ``probs`` (batch, C)."""
    c = model.config
    rnn = model.rnn
    g = _Graph(rnn.dtype)
    emb, lens, mask, _ = _encode_words(g, model.params["embedding.weight"], "embedding.weight")
    y_tm, finals = _stack(g, rnn, emb, lens, None, "rnn.")
    if c.pooling == "last":
        # the state after each sequence's last step; the reverse direction's after step 0:
        # the final states of the top layer's directions, [forward; reverse]
        top = g.op("Slice", finals[0], g.ints(-model.directions), g.ints(rnn.num_layers *
                   model.directions), g.ints(0))  # fmt: skip
        pooled = g.op("Reshape", g.op("Transpose", top, perm=[1, 0, 2]), g.ints(0, -1))
    else:
        y = _masked(g, g.batch_first(y_tm), mask)  # (B, T, D)
        if c.pooling == "mean":
            count = g.op("ReduceSum", mask, g.ints(1), keepdims=1)  # (B, 1): the lengths
            pooled = g.op("Div", g.op("ReduceSum", y, g.ints(1), keepdims=0), count)
        else:  # max over the valid steps: padding becomes -inf first
            valid = g.op("Cast", g.op("Unsqueeze", mask, g.ints(2)), to=g.onnx.TensorProto.BOOL)
            y = g.op("Where", valid, y, g.const(np.array(-np.inf, rnn.dtype)))
            pooled = g.op("ReduceMax", y, axes=[1], keepdims=0)
    logits = g.linear(pooled, g.const(model.params["fc.weight"], "fc.weight"),
                      g.const(model.params["fc.bias"], "fc.bias"))  # fmt: skip
    g.output(logits, "logits", ["batch", c.num_classes])
    g.output(g.op("Softmax", logits, axis=-1), "probs", ["batch", c.num_classes])
    return g.model("rnnkit sentence classifier", classifier_graph.__doc__ or "")


def tagger_graph(model: SequenceTagger) -> onnx.ModelProto:
    """A sequence tagger: ids (batch, time) int64, lengths (batch,) int64 -> ``logits``
    (batch, time, K) and ``tags`` (batch, time) int64 (the arg max; padding positions
    arbitrary). With character features also ``chars`` (words, chars) int64, the character
    ids of each distinct word of the batch, ``char_lengths`` (words,) int64 and
    ``word_index`` (batch, time) int64, the row of ``chars`` of each position
    (:func:`rnnkit.models.tag.make_tag_batch` builds all three)."""
    c = model.config
    g = _Graph(model.dtype)
    emb, lens, mask, _ = _encode_words(g, model.params["embedding.weight"], "embedding.weight")
    if model.use_chars:
        i64 = g.onnx.TensorProto.INT64
        chars = g.input("chars", ["words", "chars"], i64)
        char_lens = g.input("char_lengths", ["words"], i64)
        word_index = g.input("word_index", ["batch", "time"], i64)
        cemb = g.embed(g.const(model.params["char_embedding.weight"], "char_embedding.weight"),
                       chars)  # fmt: skip
        _, (h, _) = _stack(g, model.char_rnn, g.op("Transpose", cemb, perm=[1, 0, 2]),
                           g.op("Cast", char_lens, to=g.onnx.TensorProto.INT32), None,
                           "char_rnn.")  # fmt: skip
        # final states (2, U, Hc) -> [forward; backward] (U, 2 Hc), gathered to each position
        feats = g.op("Reshape", g.op("Transpose", h, perm=[1, 0, 2]), g.ints(0, -1))
        per_word = g.op("Transpose", g.op("Gather", feats, word_index, axis=0), perm=[1, 0, 2])
        emb = g.op("Concat", emb, per_word, axis=2)  # (T, B, E + 2 Hc)
    y_tm, _ = _stack(g, model.rnn, emb, lens, None, "rnn.")
    y = _masked(g, g.batch_first(y_tm), mask)  # (B, T, 2H)
    logits = g.linear(y, g.const(model.params["fc.weight"], "fc.weight"),
                      g.const(model.params["fc.bias"], "fc.bias"))  # fmt: skip
    g.output(logits, "logits", ["batch", "time", c.num_tags])
    g.output(g.op("ArgMax", logits, axis=2, keepdims=0), "tags", ["batch", "time"],
             g.onnx.TensorProto.INT64)  # fmt: skip
    return g.model("rnnkit sequence tagger", tagger_graph.__doc__ or "")


def _attend(g: _Graph, model: Seq2Seq, q: str, keys: str, proj: str, mask: str) -> tuple[str, str]:
    """Luong's global attention of the decoder output q (B, 1, Hd) over the memory:
    the attentional state h~ = tanh(W_c [c; q]) (B, 1, Hd) and alpha (B, 1, S)."""
    kind = model.config.attention
    p = model.params
    if kind == "additive":  # e = v^T tanh(W_a q + U_a h): (B, 1, 1, A) + (B, 1, S, A)
        qp = g.linear(q, g.const(p["attention.query.weight"], "attention.query.weight"), None)
        z = g.op("Tanh", g.op("Add", g.op("Unsqueeze", qp, g.ints(2)),
                              g.op("Unsqueeze", proj, g.ints(1))))  # fmt: skip
        e = g.op("Squeeze", g.linear(z, g.const(p["attention.v.weight"], "attention.v.weight"),
                                     None), g.ints(3))  # fmt: skip
    else:  # dot: q . h; general: q . (W_a h), W_a h projected once by the encoder graph
        e = g.op("MatMul", q, g.op("Transpose", keys if kind == "dot" else proj, perm=[0, 2, 1]))
    valid = g.op("Cast", g.op("Unsqueeze", mask, g.ints(1)), to=g.onnx.TensorProto.BOOL)
    alpha = g.op("Softmax", g.op("Where", valid, e, g.const(np.array(-np.inf, model.dtype))),
                 axis=-1)  # fmt: skip
    ctx = g.op("MatMul", alpha, keys)  # (B, 1, M)
    combine = g.const(p["combine.weight"], "combine.weight")
    return g.op("Tanh", g.linear(g.op("Concat", ctx, q, axis=2), combine, None)), alpha


def _reversal(g: _Graph, like: str, lengths: str, mask: str) -> str:
    """(B, S) int64 indices that reverse each row's first lengths[b] positions and leave
    the padding in place (an involution); S is the second dimension of ``like``."""
    S = g.op("Squeeze", g.op("Shape", like, start=1, end=2), g.ints(0))
    pos = g.op("Unsqueeze", g.op("Range", g.const(np.int64(0)), S, g.const(np.int64(1))),
               g.ints(0))  # (1, S)  # fmt: skip
    last = g.op("Sub", g.op("Unsqueeze", lengths, g.ints(1)), g.const(np.int64(1)))  # (B, 1)
    # Where broadcasts: (B, S) mask, (B, S) reversed positions, (1, S) positions as they are
    valid = g.op("Cast", mask, to=g.onnx.TensorProto.BOOL)
    return g.op("Where", valid, g.op("Sub", last, pos), pos)


def translator_graphs(model: Seq2Seq) -> dict[str, onnx.ModelProto]:
    """A translation model as two graphs: ``"encoder"`` and ``"decoder"`` (one step).

    The encoder: ``src`` (batch, src_time) int64 and ``src_len`` (batch,) int64 -> the
    decoder's initial state ``h`` (and ``c``) (L, batch, Hd), with input feeding ``feed``
    (batch, Hd) (zeros), and with attention the memory ``keys`` (batch, src_time, M) (and
    ``proj``, its projection, for general or additive attention).

    The decoder step: ``token`` (batch,) int64, the state and memory under the names the
    encoder gives them, and with attention ``src_len`` -> ``log_probs`` (batch, Vt) of the
    next token, the new state ``h_next`` (``c_next``, ``feed_next``) to feed back as
    ``h`` (``c``, ``feed``), and with attention ``alpha`` (batch, src_time), the weights over
    the source positions as given (also when the model reads the source reversed). Greedy
    decoding, beam search or sampling is a loop over it (rnnkit's own:
    :meth:`rnnkit.models.seq2seq.Seq2Seq.translate`).
    """
    c = model.config
    p = model.params
    i64 = require_onnx().TensorProto.INT64
    Hd, M, L = c.decoder_size, c.memory_size, c.layers
    names = ["h", "c"][: model.decoder.n_states]
    memory = ["keys"] + (["proj"] if c.attention in ("general", "additive") else [])
    if c.attention == "none":
        memory = []

    # the encoder
    g = _Graph(model.dtype)
    src = g.input("src", ["batch", "src_time"], i64)
    src_len = g.input("src_len", ["batch"], i64)
    mask = g.mask(src, src_len)
    if c.reverse_source:
        src = g.op("GatherElements", src, _reversal(g, src, src_len, mask), axis=1)
    emb = g.embed(g.const(p["encoder.embedding.weight"], "encoder.embedding.weight"), src)
    lens = g.op("Cast", src_len, to=g.onnx.TensorProto.INT32)
    y_tm, finals = _stack(g, model.encoder, g.op("Transpose", emb, perm=[1, 0, 2]), lens, None,
                          "encoder.rnn.")  # fmt: skip
    keys = _masked(g, g.batch_first(y_tm), mask)  # (B, S, M)
    if "keys" in memory:
        g.output(keys, "keys", ["batch", "src_time", M])
    if "proj" in memory:
        w = "attention.weight" if c.attention == "general" else "attention.key.weight"
        proj = g.linear(keys, g.const(p[w], w), None)
        g.output(proj, "proj", ["batch", "src_time", p[w].shape[0]])
    for k, (name, final) in enumerate(zip(names, finals, strict=True)):
        # (L*dirs, B, He) -> (L, B, dirs*He): [forward; backward] of each layer
        s = g.op("Reshape", final, g.ints(L, c.directions, -1, c.hidden))
        s = g.op("Reshape", g.op("Transpose", s, perm=[0, 2, 1, 3]), g.ints(L, 0, -1))
        if c.bridge:  # h0 = tanh(W_b s + b_b); the LSTM's c0 = W_c s + b_c
            b = "bridge" if k == 0 else "bridge_c"
            s = g.linear(s, g.const(p[b + ".weight"], b + ".weight"),
                         g.const(p[b + ".bias"], b + ".bias"))  # fmt: skip
            s = g.op("Tanh", s) if k == 0 else s
        g.output(s, name, [L, "batch", Hd])
    if c.input_feed:  # h~_0 = 0
        shape = g.op("Concat", g.op("Shape", src, start=0, end=1), g.ints(Hd), axis=0)
        zero = g.onnx.helper.make_tensor("zero", g.elem, [1], [0.0])
        g.output(g.op("ConstantOfShape", shape, value=zero), "feed", ["batch", Hd])
    encoder = g.model("rnnkit translation encoder", translator_graphs.__doc__ or "")

    # one decoder step
    g = _Graph(model.dtype)
    token = g.input("token", ["batch"], i64)
    state = [g.input(n, [L, "batch", Hd]) for n in names]
    x = g.embed(g.const(p["decoder.embedding.weight"], "decoder.embedding.weight"), token)
    if c.input_feed:
        x = g.op("Concat", x, g.input("feed", ["batch", Hd]), axis=1)  # [embed(y); h~_{t-1}]
    y_tm, finals = _stack(g, model.decoder, g.op("Unsqueeze", x, g.ints(0)), None, state,
                          "decoder.rnn.")  # fmt: skip
    h = g.batch_first(y_tm)  # (B, 1, Hd)
    if memory:
        keys = g.input("keys", ["batch", "src_time", M])
        proj = g.input("proj", ["batch", "src_time", p[w].shape[0]]) if "proj" in memory else ""
        src_len = g.input("src_len", ["batch"], i64)
        mask = g.mask(keys, src_len)
        h, alpha = _attend(g, model, h, keys, proj, mask)
        alpha = g.op("Squeeze", alpha, g.ints(1))  # (B, S)
        if c.reverse_source:  # back to the positions of the source as given
            alpha = g.op("GatherElements", alpha, _reversal(g, keys, src_len, mask), axis=1)
    h = g.op("Squeeze", h, g.ints(1))  # (B, Hd)
    logits = g.linear(h, g.const(p["generator.weight"], "generator.weight"),
                      g.const(p["generator.bias"], "generator.bias"))  # fmt: skip
    g.output(g.op("LogSoftmax", logits, axis=-1), "log_probs", ["batch", c.tgt_vocab])
    for name, final in zip(names, finals, strict=True):
        g.output(final, name + "_next", [L, "batch", Hd])
    if c.input_feed:
        g.output(h, "feed_next", ["batch", Hd])
    if memory:
        g.output(alpha, "alpha", ["batch", "src_time"])
    step = g.model("rnnkit translation decoder step", translator_graphs.__doc__ or "")
    return {"encoder": encoder, "decoder": step}


# --- run folders -------------------------------------------------------------------------------


def _lm(run: Path) -> dict[str, Any]:
    return {"": lm_graph(load_lm(run)[0])}


def _classifier(run: Path) -> dict[str, Any]:
    return {"": classifier_graph(load_classifier(run).model)}


def _tagger(run: Path) -> dict[str, Any]:
    return {"": tagger_graph(load_tagger(run).model)}


def _translator(run: Path) -> dict[str, Any]:
    return translator_graphs(load_translator(run).model)


# model kind (checkpoint.json's) -> the graphs of the run's model, loaded by its recipe,
# by the part of the file name they go to ("": the name given; "encoder": NAME.encoder.onnx)
EXPORTABLE = {KIND_LM: _lm, KIND_CLASSIFIER: _classifier, KIND_TAGGER: _tagger,
              KIND_MT: _translator}  # fmt: skip


@dataclass
class Exported:
    """One file that :func:`export_run` wrote."""

    path: Path
    kind: str
    part: str  # "model", or a translation model's "encoder" / "decoder"
    inputs: list[str]  # "name (dims) type"
    outputs: list[str]
    bytes: int


def output_paths(out: str | Path, kind: str) -> list[Path]:
    """The files that exporting a model of ``kind`` to ``out`` writes: ``out`` itself, or
    for a translation model ``NAME.encoder.onnx`` and ``NAME.decoder.onnx`` beside it.

    >>> [p.name for p in output_paths("runs/fr-en.onnx", "mt")]
    ['fr-en.encoder.onnx', 'fr-en.decoder.onnx']
    """
    out = Path(out)
    if kind != KIND_MT:
        return [out]
    return [out.with_name(f"{out.stem}.{part}{out.suffix or '.onnx'}")
            for part in ("encoder", "decoder")]  # fmt: skip


def _describe(values: Any) -> list[str]:
    onnx = require_onnx()
    out = []
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_param or str(d.dim_value) for d in t.shape.dim]
        dims = ", ".join(dims) + ("," if len(dims) == 1 else "")
        elem = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        out.append(f"{v.name} ({dims}) {elem}")
    return out


def export_run(run: str | Path, out: str | Path, force: bool = False) -> list[Exported]:
    """Write the model of a run folder (or checkpoint folder) as ONNX.

    The run's weights are loaded as ``rnnkit lm sample`` / ``classify predict`` / ``tag`` /
    ``mt translate`` load them (``best/`` preferred, else ``checkpoint/``). Each graph is
    checked with ``onnx.checker`` (full check: types and shapes) and written atomically;
    its metadata keeps the model kind, its configuration and the run's vocabularies (JSON,
    as in ``checkpoint.json``), so the file alone maps words to ids. A translation model
    gives two files (:func:`output_paths`, :func:`translator_graphs`).

    Args:
        run: the run folder.
        out: the ONNX file to write; an existing file is replaced only with ``force``.

    Raises:
        RnnkitError: one line: no run there, a kind that cannot be exported, ``out`` a
            folder or an existing file (without ``force``), onnx not installed.
    """
    onnx = require_onnx()
    if Path(out).is_dir():
        raise RnnkitError(f"{out}: is a directory; give the path of the .onnx file to write")
    if not Path(run).is_dir():
        raise RnnkitError(f"{run}: no such run folder")
    ck = load_checkpoint(run_checkpoint(run))
    if ck.kind not in EXPORTABLE:
        raise RnnkitError(f"{ck.path}: holds a {ck.kind!r} model; ONNX export covers "
                          f"{', '.join(sorted(EXPORTABLE))}")  # fmt: skip
    paths = output_paths(out, ck.kind)
    for path in paths:
        if path.is_dir():
            raise RnnkitError(f"{path}: is a directory")
        if path.exists() and not force:
            raise RnnkitError(f"{path}: exists; pass --force to replace it")
    graphs = EXPORTABLE[ck.kind](Path(run))
    blobs = []
    for (part, model), path in zip(graphs.items(), paths, strict=True):
        onnx.helper.set_model_props(model, {
            "rnnkit_kind": ck.kind,
            "rnnkit_part": part or "model",
            "rnnkit_config": json.dumps(ck.config.get("model", {})),
            "rnnkit_vocab": json.dumps(ck.vocab),
            "rnnkit_source": str(ck.path),
        })  # fmt: skip
        if model.ByteSize() > MAX_BYTES:
            raise RnnkitError(f"{run}: the model is too large for one ONNX file (2 GiB)")
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # onnx raises its own ValidationError / InferenceError
            raise RnnkitError(f"ONNX export of {run}: the graph fails onnx.checker "
                              f"({str(e).splitlines()[0]})") from None  # fmt: skip
        blobs.append((path, part or "model", model, model.SerializeToString()))
    done = []
    for path, part, model, data in blobs:  # every graph built and checked before any written
        atomic_write_bytes(path, data)
        done.append(Exported(path, ck.kind, part, _describe(model.graph.input),
                             _describe(model.graph.output), len(data)))  # fmt: skip
    return done
