"""Deployment: trained models in formats that other runtimes run (:mod:`rnnkit.deploy.onnx`:
ONNX graphs for onnxruntime). Reads run folders through the recipes' loaders; nothing below
imports it."""
