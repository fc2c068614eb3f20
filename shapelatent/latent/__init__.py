"""Latent-space tools: encode to a store, test-time code refinement, retrieval, interpolation, generation."""
