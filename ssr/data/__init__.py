"""Degradation engine (kernels, kernel fields, depth) and datasets of the SSR toolkit."""
