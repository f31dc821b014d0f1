"""What a test compares to show that a directory was left untouched."""

import hashlib
import os


def directory_listing(directory):
    """Every file and folder under `directory`: relative path -> (size, mtime_ns, sha256)."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            digest = None
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            found[os.path.relpath(path, directory)] = (info.st_size, info.st_mtime_ns, digest)
    return found
