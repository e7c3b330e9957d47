"""The compiled engine (numba, llvmlite): placeholder, filled in below."""
