"""Files that appear whole: written to a temporary name beside the target, then renamed over it.

``tempfile.mkstemp`` creates files readable by their owner only (0600); ``publish`` gives the file
the permissions a plain ``open(path, "w")`` would (0666 less the umask) before the rename, so
results, previews and checkpoints are as shareable as any other file the user writes.
"""

import os


def default_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp, path):
    """Give ``tmp`` ordinary file permissions and move it to ``path`` (atomic on one filesystem)."""
    os.chmod(tmp, default_mode())
    os.replace(tmp, path)
