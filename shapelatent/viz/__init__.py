"""2-D plots the library writes itself (matplotlib, headless): the loss curve and the latent map.

Pictures of 3-D shapes (points, meshes) are rendered by the ``viewers`` package, which the library never
imports; jobs that want them take a drawer (:mod:`shapelatent.viz.drawer`).
"""
