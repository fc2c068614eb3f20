"""Latent-space tools: encode to a store, retrieval, interpolation, generation."""
