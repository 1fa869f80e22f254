"""Small utilities with no knowledge of hands: whole-file writes (atomic), the pinhole projection
(camera), the torch device (device), the user-facing error (errors), the restricted unpickler (safe_pickle)."""
