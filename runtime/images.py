"""Images: unpacked root filesystems, imported from a tarball, plus the built-in ``hello``.

An image is a directory ``/var/lib/ipcbench/images/<name>/`` holding
``rootfs/`` (the tarball unpacked, e.g. what ``docker export`` wrote) and
``image.json``. There are no layers and no registry: a container sees its
image's directories read-only (with a private /tmp, /run, /dev, /proc and
/sys), as ``docker run --read-only`` would. Device nodes in the tarball are
skipped: every container gets the same minimal /dev.

``hello`` is built in: the host's directories as root, and a program
(``runtime/hello.py``) that explains what the runtime did to make the
container it runs in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from runtime import PROJECT_ROOT
from runtime.records import NAME

IMAGES_ROOT = Path("/var/lib/ipcbench/images")
DEFAULT_COMMAND = ("/bin/sh",)


class ImageError(Exception):
    """No such image, a bad tarball, or a name in use."""


@dataclass(frozen=True)
class Image:
    name: str
    rootfs: str | None  # None: the host's directories
    command: tuple[str, ...]  # used when the run names no command
    created: float = 0.0
    size: int = 0

    @property
    def builtin(self) -> bool:
        return self.rootfs is None


def _hello() -> Image:
    boot = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from runtime.hello import main; sys.exit(main())"
    )
    command = (sys.executable, "-E", "-s", "-S", "-c", boot, str(PROJECT_ROOT))
    return Image("hello", None, command)


BUILTIN = {"hello": _hello}


def import_tarball(tarball: Path, name: str, root: Path = IMAGES_ROOT) -> Image:
    """Unpack ``tarball`` as the image ``name`` (atomically: whole or not at all)."""
    if not NAME.fullmatch(name):
        raise ImageError(f"invalid image name {name!r}")
    if name in BUILTIN or (root / name).exists():
        raise ImageError(f"an image named {name!r} exists already")
    if not tarball.is_file():
        raise ImageError(f"no such file: {tarball}")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        (staging / "rootfs").mkdir()
        done = subprocess.run(
            ["tar", "-x", "-p", "--numeric-owner", "--exclude=./dev/*", "--exclude=dev/*",
             "-f", str(tarball), "-C", str(staging / "rootfs")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise ImageError(f"cannot unpack {tarball}: {done.stderr.strip()}")
        meta = {"name": name, "created": time.time(), "source": str(tarball.resolve())}
        meta["size"] = sum(p.lstat().st_size for p in (staging / "rootfs").rglob("*"))
        (staging / "image.json").write_text(json.dumps(meta))
        staging.rename(root / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return get(name, root)


def get(name: str, root: Path = IMAGES_ROOT) -> Image:
    if name in BUILTIN:
        return BUILTIN[name]()
    meta_path = root / name / "image.json"
    if not NAME.fullmatch(name) or not meta_path.exists():
        raise ImageError(f"no such image: {name} (ipcbench image import TARBALL {name})")
    meta = json.loads(meta_path.read_text())
    return Image(name, str(root / name / "rootfs"), DEFAULT_COMMAND, meta["created"], meta["size"])


def all_images(root: Path = IMAGES_ROOT) -> list[Image]:
    found = [make() for make in BUILTIN.values()]
    if root.is_dir():
        found += [get(d.name, root) for d in sorted(root.iterdir()) if NAME.fullmatch(d.name)]
    return found


def remove(name: str, root: Path = IMAGES_ROOT) -> None:
    image = get(name, root)
    if image.builtin:
        raise ImageError(f"{name} is built in")
    shutil.rmtree(root / name)
