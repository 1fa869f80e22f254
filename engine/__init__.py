"""HMP Hand Capture engine: video in, fitted MANO hand sequences out.

Importing this package is cheap and needs numpy only (``engine.contract.result``,
``engine.contract.joints``, ``engine.contract.progress`` and ``engine.contract.choices`` are shared with the Blender add-on).
Heavy modules (torch, mediapipe, opencv) are imported by the commands that need them.
"""

__version__ = "0.1.0"
