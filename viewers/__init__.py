"""Viewers: the Open3D interactive viewer and the headless renderer.

They take files and arrays, never training state; the core library (``shapelatent``) never imports them.
"""
